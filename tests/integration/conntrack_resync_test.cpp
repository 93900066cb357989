// Recovery from a conntrack event overrun on the real kernel, in a namespace of its own: the dump that
// recovers the lost events is read in bounded turns, so the loop serves its other handlers meanwhile
// (before, one synchronous dump of the whole table ran inside the overrun). Root only.
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <unistd.h>

#include "conntrack/ct_listener.hpp"
#include "lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {

constexpr int kEntries = 20000;  // far beyond the tiny event buffer below, and many dump turns

void put_tuple(nlmsghdr* nlh, int type, std::uint32_t src, std::uint32_t dst, std::uint16_t sport, std::uint16_t dport) {
  auto* t = mnl_attr_nest_start(nlh, type);
  auto* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, src);
  mnl_attr_put_u32(nlh, CTA_IP_V4_DST, dst);
  mnl_attr_nest_end(nlh, ip);
  auto* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_UDP);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
  mnl_attr_nest_end(nlh, p);
  mnl_attr_nest_end(nlh, t);
}

// `n` UDP entries created through ctnetlink (as `conntrack -I` does), many per datagram; each one is a
// NEW event for the listener.
Status inject(int n) {
  auto sock = open_mnl_socket(NETLINK_NETFILTER, 0, "inject");
  if (!sock) return sock.error();
  std::vector<char> buf(1 << 16);
  std::size_t used = 0;
  auto flush = [&]() -> Status {
    if (used && mnl_socket_sendto(sock->get(), buf.data(), used) < 0) return Error{"send conntrack entries"};
    used = 0;
    return ok_status();
  };
  for (int i = 0; i < n; ++i) {
    if (buf.size() - used < 512)
      if (auto st = flush(); !st) return st;
    auto* nlh = mnl_nlmsg_put_header(buf.data() + used);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
    nlh->nlmsg_seq = static_cast<unsigned>(i + 1);
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_INET;
    nfg->version = NFNETLINK_V0;
    const std::uint32_t src = htonl((10u << 24) | (77u << 16) | static_cast<std::uint32_t>(i + 1));
    const std::uint32_t dst = htonl((10u << 24) | (78u << 16) | 1u);
    put_tuple(nlh, CTA_TUPLE_ORIG, src, dst, 40000, 53);
    put_tuple(nlh, CTA_TUPLE_REPLY, dst, src, 53, 40000);
    mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(600));
    used += nlh->nlmsg_len;
  }
  return flush();
}

struct Outcome {
  std::uint64_t entries_in_table = 0;
  FlowSourceStats stats;
  std::optional<std::uint64_t> entries_when_loop_served;  // resync entries handled when the posted handler ran
  bool finished = false;
};

class CtResync : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root: a network namespace and its conntrack table";
    sh("modprobe nf_conntrack 2>/dev/null");
    sh("ip netns del " + ns_ + " 2>/dev/null");
    ASSERT_EQ(sh("ip netns add " + ns_), 0) << "cannot create namespace " << ns_;
  }
  void TearDown() override {
    if (is_root()) sh("ip netns del " + ns_ + " 2>/dev/null");
  }

  // In the namespace: a listener with a tiny buffer, `kEntries` entries created while the loop does
  // not read (the buffer overruns: a real ENOBUFS), then the loop runs until the dumps are read.
  // `extra` runs on the loop before it starts.
  Outcome run(const std::function<void(conntrack::CtListener&)>& extra = {}) {
    Outcome r;
    in_netns("/run/netns/" + ns_, [&]() -> Status {
      boost::asio::io_context io;
      conntrack::CtListenerOptions o;
      o.rcvbuf_bytes = 64 << 10;
      o.max_rcvbuf_bytes = 64 << 10;
      conntrack::CtListener l(io, o);
      auto st = l.start([&](const FlowTuple&, bool resync) {
        if (!resync || r.entries_when_loop_served || l.stats().resync_entries != 1) return;
        // The first replayed entry: another handler asks for the loop, as a control request would.
        boost::asio::post(io, [&] { r.entries_when_loop_served = l.stats().resync_entries; });
      });
      if (!st) return st;
      if (auto s = inject(kEntries); !s) return s;
      if (extra) extra(l);
      boost::asio::steady_timer tick(io);
      int ticks = 0;
      std::function<void()> check = [&] {
        tick.expires_after(std::chrono::milliseconds(20));
        tick.async_wait([&](boost::system::error_code) {
          const bool idle = !l.resync_running() && l.stats().resyncs > 0;
          if ((idle && l.stats().resync_entries >= static_cast<std::uint64_t>(kEntries)) || ++ticks > 3000) {
            r.finished = idle;
            return io.stop();
          }
          check();
        });
      };
      check();
      io.run();
      r.stats = l.stats();
      return conntrack::dump_conntrack([&](const FlowTuple&) { ++r.entries_in_table; });
    });
    return r;
  }

  const std::string ns_ = "twct-" + std::to_string(getpid());
};

}  // namespace

TEST_F(CtResync, AnOverrunIsRecoveredWhileTheLoopKeepsServing) {
  auto r = run();
  ASSERT_EQ(r.entries_in_table, static_cast<std::uint64_t>(kEntries)) << "the entries were not all created";
  ASSERT_GE(r.stats.enobufs, 1u) << "the events did not overrun the 64 KiB buffer";
  ASSERT_TRUE(r.finished) << "the resync did not end";
  EXPECT_GE(r.stats.resync_entries, static_cast<std::uint64_t>(kEntries)) << "the dump recovered every entry";
  ASSERT_TRUE(r.entries_when_loop_served.has_value()) << "the loop never ran the posted handler";
  // Before: the whole table was replayed inside the overrun before anything else could run.
  EXPECT_LT(*r.entries_when_loop_served, static_cast<std::uint64_t>(kEntries) / 4)
      << "the loop served another handler only after " << *r.entries_when_loop_served << " replayed entries";
}

TEST_F(CtResync, RequestsWhileADumpRunsAreCoalescedIntoOneMore) {
  auto r = run([](conntrack::CtListener& l) {
    l.resync_in_background();  // the overrun's own request then joins these
    l.resync_in_background();
    l.resync_in_background();
  });
  ASSERT_EQ(r.entries_in_table, static_cast<std::uint64_t>(kEntries));
  ASSERT_TRUE(r.finished);
  EXPECT_EQ(r.stats.resyncs, 2u) << "one dump, then one more for everything asked meanwhile";
  EXPECT_GE(r.stats.resyncs_coalesced, 2u);
  EXPECT_EQ(r.stats.resync_entries, 2u * kEntries);
}
