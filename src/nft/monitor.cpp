#include "nft/monitor.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "common/fd.hpp"
#include "common/netlink.hpp"

namespace topowall::nft {

namespace {
// The first attribute of every table, chain, rule, set and element message is the table's name.
constexpr std::uint16_t kTableAttr = 1;
static_assert(NFTA_TABLE_NAME == kTableAttr && NFTA_CHAIN_TABLE == kTableAttr && NFTA_RULE_TABLE == kTableAttr &&
              NFTA_SET_TABLE == kTableAttr && NFTA_SET_ELEM_LIST_TABLE == kTableAttr);

const nlattr* find_attr(const nlmsghdr* nlh, std::uint16_t type) {
  auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (; mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a))); a = mnl_attr_next(a))
    if (mnl_attr_get_type(a) == type) return a;
  return nullptr;
}

std::string attr_str(const nlmsghdr* nlh, std::uint16_t type) {
  const auto* a = find_attr(nlh, type);
  if (!a) return {};
  auto* p = static_cast<const char*>(mnl_attr_get_payload(a));
  return std::string(p, strnlen(p, mnl_attr_get_payload_len(a)));
}

std::uint32_t attr_u32(const nlmsghdr* nlh, std::uint16_t type) {
  const auto* a = find_attr(nlh, type);
  return a && mnl_attr_get_payload_len(a) >= 4 ? ntohl(mnl_attr_get_u32(a)) : 0;
}
}  // namespace

bool ChangeFilter::feed(const nlmsghdr* nlh) {
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return false;
  const auto msg = nlh->nlmsg_type & 0xff;
  if (msg == NFT_MSG_NEWGEN) {
    bool foreign = touched_ && attr_u32(nlh, NFTA_GEN_PROC_PID) != pid_;
    touched_ = false;
    return foreign;
  }
  const auto family = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family;
  if ((family == NFPROTO_INET || family == NFPROTO_BRIDGE) && attr_str(nlh, kTableAttr) == table_) touched_ = true;
  return false;
}

NftMonitor::NftMonitor(boost::asio::io_context& io, std::string table, int rcvbuf)
    : io_(io), filter_(std::move(table), static_cast<std::uint32_t>(getpid())), rcvbuf_(rcvbuf) {}

NftMonitor::~NftMonitor() { stop(); }

Status NftMonitor::start(std::function<void(const std::string&)> on_change) {
  on_change_ = std::move(on_change);
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER));
  if (!fd) return Error{std::string("nftables monitor socket: ") + std::strerror(errno), errno};
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return Error{std::string("nftables monitor bind: ") + std::strerror(errno), errno};
  int group = NFNLGRP_NFTABLES;
  if (setsockopt(fd.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
    return Error{std::string("nftables monitor subscribe: ") + std::strerror(errno) + " (needs CAP_NET_ADMIN)", errno};
  // Our own transactions are echoed here too (a full apply at 100,000 endpoints is ~400,000 elements,
  // more than any buffer): room for the common ones; an overrun is counted and covered by a read-back.
  // Ignored on failure: a smaller buffer only means more overruns, each still covered.
  (void)setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_);
  sd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd.release());
  arm();
  return ok_status();
}

void NftMonitor::stop() {
  if (!sd_) return;
  boost::system::error_code ec;
  sd_->close(ec);
  sd_.reset();
}

void NftMonitor::arm() {
  sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec || !sd_) return;
    try {
      drain();
    } catch (const std::exception& e) {  // never out of the event loop
      spdlog::error("nftables monitor: {}", e.what());
    }
    if (sd_) arm();
  });
}

void NftMonitor::drain() {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  for (;;) {
    ssize_t n = recv(sd_->native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == ENOBUFS) {
      // Not a repair: the echo of our own apply overruns too, and repairing it was a loop. The next
      // periodic check reads our tables back because losses() moved.
      if (overruns_++ == 0)
        spdlog::warn("nftables change notices lost (ENOBUFS); our tables will be read back and compared at the next "
                     "periodic check (ruleset_notices_lost counts each loss)");
      continue;
    }
    if (n <= 0) return;
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); nlmsg_fits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
      if (filter_.feed(nlh)) on_change_("another process changed the table");
  }
}

}  // namespace topowall::nft
