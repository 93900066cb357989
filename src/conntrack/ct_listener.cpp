#include "conntrack/ct_listener.hpp"

#include "common/descriptor.hpp"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "common/netlink.hpp"
#include "conntrack/ct_decode.hpp"
#include "conntrack/ct_filter.hpp"

namespace topowall::conntrack {

namespace {

Error errno_error(const char* what) { return netlink_error(what, errno); }

struct DumpCtx {
  const std::function<void(const nlmsghdr*)>* fn;
};

int dump_cb(const nlmsghdr* nlh, void* data) {
  (*static_cast<DumpCtx*>(data)->fn)(nlh);
  return MNL_CB_OK;
}

[[nodiscard]] Status dump_raw(const std::function<void(const nlmsghdr*)>& fn);

}  // namespace

Status dump_conntrack(const std::function<void(const FlowTuple&)>& fn) {
  return dump_raw([&](const nlmsghdr* nlh) {
    if (auto f = decode_ct_message(nlh)) fn(*f);
  });
}

Result<std::size_t> delete_conntrack(const std::function<bool(const FlowTuple&)>& doomed) {
  // Collect the doomed entries' original tuples verbatim, then delete each.
  std::vector<std::vector<char>> requests;
  auto st = dump_raw([&](const nlmsghdr* nlh) {
    auto f = decode_ct_message(nlh);
    if (!f || !doomed(*f)) return;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    auto* out = mnl_nlmsg_put_header(buf.data());
    out->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    out->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(out, sizeof(nfgenmsg)));
    *nfg = *static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
    auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
      auto type = mnl_attr_get_type(a);
      if (type == CTA_TUPLE_ORIG || type == CTA_ZONE)
        mnl_attr_put(out, a->nla_type, mnl_attr_get_payload_len(a), mnl_attr_get_payload(a));
      a = mnl_attr_next(a);
    }
    buf.resize(out->nlmsg_len);
    requests.push_back(std::move(buf));
  });
  if (!st) return st.error();
  if (requests.empty()) return std::size_t{0};
  auto opened = open_mnl_socket(NETLINK_NETFILTER, 0, "ctnetlink");
  if (!opened) return opened.error();
  auto* sock = opened->get();
  std::size_t deleted = 0;
  std::vector<char> ack(MNL_SOCKET_BUFFER_SIZE);
  unsigned seq = static_cast<unsigned>(time(nullptr));
  for (auto& r : requests) {
    auto* nlh = reinterpret_cast<nlmsghdr*>(r.data());
    nlh->nlmsg_seq = ++seq;
    if (mnl_socket_sendto(sock, nlh, nlh->nlmsg_len) < 0) continue;
    ssize_t n = mnl_socket_recvfrom(sock, ack.data(), ack.size());
    if (n > 0 && mnl_cb_run(ack.data(), static_cast<size_t>(n), seq, mnl_socket_get_portid(sock), nullptr, nullptr) >= 0)
      ++deleted;  // ENOENT: it ended on its own meanwhile
  }
  return deleted;
}

namespace {

Status dump_raw(const std::function<void(const nlmsghdr*)>& fn) {
  auto opened = open_mnl_socket(NETLINK_NETFILTER, 0, "ctnetlink");
  if (!opened) return opened.error();
  auto* sock = opened->get();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  auto* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  const unsigned seq = static_cast<unsigned>(time(nullptr));
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;  // both IPv4 and IPv6
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (mnl_socket_sendto(sock, nlh, nlh->nlmsg_len) < 0) return errno_error("request conntrack dump");
  const unsigned portid = mnl_socket_get_portid(sock);
  DumpCtx ctx{&fn};
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock, buf.data(), buf.size());
    if (n < 0) return errno_error("read conntrack dump");
    int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, dump_cb, &ctx);
    if (r == MNL_CB_STOP) break;
    if (r < 0) return errno_error("parse conntrack dump");
  }
  return ok_status();
}

}  // namespace

CtListener::CtListener(boost::asio::io_context& io, CtListenerOptions opts)
    : io_(io), opts_(opts), buf_(kSlots * kSlotBytes) {}

CtListener::~CtListener() { stop(); }

Status CtListener::start(FlowHandler handler) {
  handler_ = std::move(handler);
  // Updates say when a connection was answered (learning waits for that); destroys say which never were.
  auto sock = open_mnl_socket(NETLINK_NETFILTER,
                              NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY,
                              "conntrack events");
  if (!sock) return sock.error();
  sock_ = std::move(*sock);
  stats_.subscribed = true;  // bound into the groups above
  int fd = mnl_socket_get_fd(sock_.get());
  int size = opts_.rcvbuf_bytes;
  // FORCE bypasses rmem_max (we are root); fall back to the capped call.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  stats_.rcvbuf_bytes = size;
  if (opts_.event_mark) attach_filter(fd);
  sd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
  sd_->non_blocking(true);
  arm();
  return ok_status();
}

void CtListener::attach_filter(int fd) {
  auto st = attach_event_filter(fd, opts_.event_mark);
  if (st) return;
  // Enforcement does not depend on it: the agent only spends a wake-up per connection again, as before.
  ++stats_.filter_failures;
  spdlog::warn("conntrack events unfiltered: {}; every connection's events reach the agent (CPU per connection, "
               "enforcement unaffected)", st.error().message);
}

// The groups joined by start(). Leaving them (rather than filtering) spares the kernel building every
// connection's event: ctnetlink builds one whenever the group has any listener.
Status CtListener::set_subscribed(bool wanted) {
  if (!sock_ || wanted == stats_.subscribed) return ok_status();
  const int fd = mnl_socket_get_fd(sock_.get());
  const int op = wanted ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP;
  for (int group : {NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY}) {
    if (setsockopt(fd, SOL_NETLINK, op, &group, sizeof group) == 0) continue;
    auto err = errno_error(wanted ? "join conntrack event groups" : "leave conntrack event groups");
    // Fail safe for learning: back into every group (joining one already joined is a no-op).
    for (int g : {NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY})
      (void)setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g);  // best effort: the error is already the answer
    stats_.subscribed = true;
    ++stats_.subscribe_failures;
    if (!std::exchange(logged_subscribe_failure_, true))
      spdlog::warn("conntrack events: {}; staying subscribed (every connection builds an event; learning and "
                   "enforcement unaffected)", err.message);
    return err;
  }
  stats_.subscribed = wanted;
  if (!wanted) resync_again_ = false;  // no dump for events nobody needs
  spdlog::info("conntrack events {}", wanted ? "subscribed: a workload learns" : "paused: no workload learns");
  return ok_status();
}

void CtListener::stop() {
  release_descriptor(sd_);  // the mnl socket owns the fd
  sock_.reset();
  dump_.reset();  // a background resync ends with the events it recovers
  resync_again_ = false;
}

void CtListener::arm() {
  if (!sd_) return;
  sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // cancelled on stop
    drain();
    arm();
  });
}

void CtListener::drain() {
  int fd = mnl_socket_get_fd(sock_.get());
  std::array<mmsghdr, kSlots> msgs{};
  std::array<iovec, kSlots> iov{};
  // Bounded so one busy socket cannot starve the rest of the loop: up to 1024 events per turn, a few
  // milliseconds of learning (8192 held a `status` request 100+ ms under a flood: bench `--only storm`);
  // the socket's buffer holds what waits for the next turn.
  for (int round = 0; round < 32; ++round) {
    for (std::size_t i = 0; i < kSlots; ++i) {
      iov[i] = {buf_.data() + i * kSlotBytes, kSlotBytes};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(fd, msgs.data(), kSlots, MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (errno == ENOBUFS) {
        on_overrun();
        continue;
      }
      ++stats_.errors;
      spdlog::warn("conntrack events: receive failed: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < got; ++i) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {  // cannot happen with one event per datagram; never parse a cut one
        ++stats_.errors;
        continue;
      }
      on_datagram(buf_.data() + static_cast<std::size_t>(i) * kSlotBytes, msgs[i].msg_len);
    }
    if (static_cast<std::size_t>(got) < kSlots) return;  // drained
  }
}

void CtListener::on_datagram(const char* data, std::size_t n) {
  int len = static_cast<int>(n);
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(data); nlmsg_fits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
    ++stats_.messages;
    if (auto f = decode_ct_message(nlh)) {
      if (f->phase == FlowPhase::progress) continue;  // a later state change (FIN_WAIT ...): nothing to learn
      ++stats_.flows;
      try {
        handler_(*f, false);
      } catch (const std::exception& e) {
        spdlog::error("flow handler failed: {}", e.what());
      }
    } else {
      ++stats_.undecodable;
    }
  }
}

void CtListener::on_overrun() {
  // The kernel dropped events: grow the buffer so the next burst fits, then recover what was lost
  // from a dump (conntrack-tools does the same), read in the background: a synchronous dump of a
  // large table here froze the loop that also answers the control socket and keeps the etcd lease.
  ++stats_.enobufs;
  int fd = mnl_socket_get_fd(sock_.get());
  int size = std::min(stats_.rcvbuf_bytes * 2, opts_.max_rcvbuf_bytes);
  if (size > stats_.rcvbuf_bytes && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0)
    stats_.rcvbuf_bytes = size;
  if (!stats_.subscribed) return;  // lost while leaving the groups: events nothing needs, no dump
  if (resync_running()) {  // a storm overruns many times a second: one log per dump, the rest counted
    resync_again_ = true;
    ++stats_.resyncs_coalesced;
    return;
  }
  spdlog::warn("conntrack events overran the socket buffer (ENOBUFS #{}); buffer now {} bytes; resyncing from a dump",
               stats_.enobufs, stats_.rcvbuf_bytes);
  resync_in_background();
}

void CtListener::resync_in_background() {
  if (resync_running()) {
    resync_again_ = true;
    ++stats_.resyncs_coalesced;
    return;
  }
  if (!dump_)
    dump_ = std::make_unique<CtAsyncDump>(
        io_,
        [this](const nlmsghdr* nlh) {
          if (auto f = decode_ct_message(nlh)) replay(*f);
        },
        [this](const Status& s) { on_background_resync_done(s); });
  ++stats_.resyncs;
  if (auto s = dump_->start(); !s) {
    ++stats_.errors;
    spdlog::error("conntrack resync could not start: {}; events lost in the overrun stay unseen until the next dump",
                  s.error().message);
  }
}

void CtListener::on_background_resync_done(const Status& s) {
  if (!s) {
    ++stats_.errors;
    spdlog::error("conntrack resync failed: {}; events lost in the overrun stay unseen until the next dump",
                  s.error().message);
  }
  if (std::exchange(resync_again_, false)) resync_in_background();
}

void CtListener::replay(const FlowTuple& f) {
  ++stats_.resync_entries;
  try {
    handler_(f, true);
  } catch (const std::exception& e) {
    spdlog::error("flow handler failed during resync: {}", e.what());
  }
}

Status CtListener::resync() {
  // Synchronous, for start-up and for `edges prune` (which must see every open connection first).
  ++stats_.resyncs;
  return dump_conntrack([this](const FlowTuple& f) { replay(f); });
}

}  // namespace topowall::conntrack
