#include "set_watch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace topowall::bench {

namespace {
std::string attr_string(const nlattr* a) {
  auto* p = static_cast<const char*>(mnl_attr_get_payload(a));
  return std::string(p, strnlen(p, mnl_attr_get_payload_len(a)));
}

// Calls f on each attribute in [first, tail) (libmnl's loop macros assign void* and are C only).
template <typename F>
void each_attr(const void* first, const void* tail, F f) {
  auto* a = static_cast<const nlattr*>(first);
  for (; mnl_attr_ok(a, static_cast<int>(static_cast<const char*>(tail) - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a))
    f(a);
}

void each_nested(const nlattr* parent, auto f) {
  each_attr(mnl_attr_get_payload(parent), static_cast<const char*>(mnl_attr_get_payload(parent)) + mnl_attr_get_payload_len(parent), f);
}

// The nested attribute of `type` inside `parent`, or null.
const nlattr* nested(const nlattr* parent, std::uint16_t type) {
  const nlattr* found = nullptr;
  each_nested(parent, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == type) found = a;
  });
  return found;
}
}  // namespace

SetWatch::SetWatch(std::string table, std::string set, Event ev)
    : table_(std::move(table)), set_(std::move(set)), ev_(std::move(ev)) {
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  int group = NFNLGRP_NFTABLES, big = 256 << 20;  // a full apply of 100k endpoints is ~400k notifications
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ||
      setsockopt(fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0 || pipe2(wake_, O_CLOEXEC) < 0) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return;
  }
  (void)setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);  // smaller: overruns() says so
  thread_ = std::thread([this] { run(); });
}

SetWatch::~SetWatch() {
  if (thread_.joinable()) {
    (void)!write(wake_[1], "x", 1);
    thread_.join();
  }
  for (int fd : {fd_, wake_[0], wake_[1]})
    if (fd >= 0) ::close(fd);
}

void SetWatch::run() {
  std::vector<char> buf(1 << 20);
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    const auto t = Clk::now();
    if (n < 0 && errno == ENOBUFS) ++overruns_;
    if (n <= 0) continue;
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
      feed(nlh, t);
  }
}

// One NEWSETELEM / DELSETELEM: table, set, then the elements, each a key holding the address.
void SetWatch::feed(const void* p, Clk::time_point t) {
  const auto* nlh = static_cast<const nlmsghdr*>(p);
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return;
  const auto msg = nlh->nlmsg_type & 0xff;
  if (msg != NFT_MSG_NEWSETELEM && msg != NFT_MSG_DELSETELEM) return;
  if (static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family != NFPROTO_INET) return;
  std::string table, set;
  const nlattr* elems = nullptr;
  each_attr(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)), mnl_nlmsg_get_payload_tail(nlh), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case NFTA_SET_ELEM_LIST_TABLE: table = attr_string(a); break;
      case NFTA_SET_ELEM_LIST_SET: set = attr_string(a); break;
      case NFTA_SET_ELEM_LIST_ELEMENTS: elems = a; break;
      default: break;
    }
  });
  if (table != table_ || set != set_ || !elems) return;
  each_nested(elems, [&](const nlattr* e) {
    const auto* key = nested(e, NFTA_SET_ELEM_KEY);
    const auto* value = key ? nested(key, NFTA_DATA_VALUE) : nullptr;
    if (!value || mnl_attr_get_payload_len(value) != 4) return;
    std::uint32_t be;
    std::memcpy(&be, mnl_attr_get_payload(value), 4);
    ev_(ntohl(be), msg == NFT_MSG_NEWSETELEM, t);
  });
}

}  // namespace topowall::bench
