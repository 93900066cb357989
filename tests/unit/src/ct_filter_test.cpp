// The conntrack event filter, run by the real kernel: attached to one end of a datagram socketpair (the
// kernel checks and runs a socket filter there as it does on the netlink socket, SKF_AD_NLATTR included), a
// message sent from the other end either arrives or is dropped. Messages: a recorded ctnetlink NEW event
// (no CTA_MARK: a zero mark) and that event with a CTA_MARK appended. No root needed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstring>

#include "common/fd.hpp"
#include "conntrack/ct_filter.hpp"
#include "fakes.hpp"
#include "topowall/topology/ruleset.hpp"

using namespace topowall;

namespace {

constexpr std::uint32_t kBit = 0x08000000;  // topology::event_mark of the default --mark-mask

std::vector<unsigned char> recorded() {
  return fakes::read_hex(std::string(TOPOWALL_TEST_DATA) + "/ct_tcp.hex");
}

// `attr` (type, u32 payload in network order) appended at the top level, or nested in a new CTA_TUPLE_MASTER.
std::vector<unsigned char> with_attr(std::vector<unsigned char> m, std::uint16_t type, std::uint32_t value,
                                     bool nested = false) {
  auto put = [&](std::uint16_t t, std::uint16_t len) {
    nlattr a{len, t};
    const auto* p = reinterpret_cast<const unsigned char*>(&a);
    m.insert(m.end(), p, p + sizeof a);
  };
  if (nested) put(CTA_TUPLE_MASTER | NLA_F_NESTED, 2 * sizeof(nlattr) + 4);
  put(type, sizeof(nlattr) + 4);
  const std::uint32_t be = htonl(value);
  const auto* p = reinterpret_cast<const unsigned char*>(&be);
  m.insert(m.end(), p, p + 4);
  auto len = static_cast<std::uint32_t>(m.size());
  std::memcpy(m.data(), &len, sizeof len);  // nlmsg_len
  return m;
}

struct Pair {
  UniqueFd tx, rx;
};

Pair filtered_pair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0) return {};
  Pair p{UniqueFd(sv[0]), UniqueFd(sv[1])};
  auto st = conntrack::attach_event_filter(p.rx.get(), kBit);
  EXPECT_TRUE(st) << st.error().message;
  return p;
}

// Whether the message got through the filter.
bool delivered(const std::vector<unsigned char>& m) {
  auto p = filtered_pair();
  if (p.tx.get() < 0) return false;
  EXPECT_EQ(send(p.tx.get(), m.data(), m.size(), 0), static_cast<ssize_t>(m.size()));
  std::vector<unsigned char> got(m.size() + 64);
  auto n = recv(p.rx.get(), got.data(), got.size(), MSG_DONTWAIT);  // queued at send, or never
  if (n < 0) return false;
  EXPECT_EQ(static_cast<std::size_t>(n), m.size()) << "a kept message arrives whole";
  return true;
}

}  // namespace

TEST(CtEventFilter, TheBitIsTheMasksHighest) {
  EXPECT_EQ(topology::event_mark(0x0fff0000), kBit);
  EXPECT_EQ(topology::event_mark(0x000000ff), 0x80u);
}

TEST(CtEventFilter, KeepsAnEventWhoseMarkCarriesTheBit) {
  auto m = recorded();
  ASSERT_GT(m.size(), 20u);
  EXPECT_TRUE(delivered(with_attr(m, CTA_MARK, kBit)));
  EXPECT_TRUE(delivered(with_attr(m, CTA_MARK, kBit | 0x00012345))) << "other bits do not matter";
}

TEST(CtEventFilter, DropsAnEventWithoutTheBit) {
  auto m = recorded();
  EXPECT_FALSE(delivered(m)) << "no CTA_MARK: the kernel leaves out a zero mark";
  EXPECT_FALSE(delivered(with_attr(m, CTA_MARK, 0)));
  EXPECT_FALSE(delivered(with_attr(m, CTA_MARK, 0xf7ffffff))) << "every bit but ours";
}

TEST(CtEventFilter, ReadsOnlyTheTopLevelMark) {
  auto m = recorded();
  // An attribute numbered like CTA_MARK inside a nested one is not the entry's mark.
  EXPECT_FALSE(delivered(with_attr(m, CTA_MARK, kBit, true)));
  // Another top-level attribute carrying the bit is not the mark either.
  EXPECT_FALSE(delivered(with_attr(m, CTA_SECMARK, kBit)));
  // The mark after a nested attribute that holds a CTA_MARK-numbered one: the real mark decides.
  EXPECT_TRUE(delivered(with_attr(with_attr(m, CTA_MARK, 0, true), CTA_MARK, kBit)));
  EXPECT_FALSE(delivered(with_attr(with_attr(m, CTA_MARK, kBit, true), CTA_MARK, 0x1)));
}
