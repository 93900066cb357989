#include "nft/nft_socket.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "common/netlink.hpp"

namespace topowall::nft {

namespace {
constexpr std::uint32_t kPage = 256 * 1024;

template <typename Fn>
void for_each_attr(const nlmsghdr* nlh, std::size_t off, Fn fn) {
  auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, off));
  auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    fn(a);
    a = mnl_attr_next(a);
  }
}

std::string extack_message(const nlmsghdr* nlh) {
  // NLMSGERR_ATTR_MSG follows the echoed request (capped to the header with NETLINK_CAP_ACK).
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  std::size_t off = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - sizeof(nlmsghdr);
  std::string msg;
  for_each_attr(nlh, off, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) msg = mnl_attr_get_str(a);
  });
  return msg;
}

Error nl_error(int err, const std::string& what, const std::string& ext) {
  return netlink_error(ext.empty() ? what : what + " (" + ext + ")", err);
}
}  // namespace

Batch::Batch(std::uint32_t& seq, std::optional<std::uint32_t> genid) : b_(nftnl_batch_alloc(kPage, kPage)), seq_(seq) {
  if (!b_) {
    fail(alloc_error("an nftables batch"));
    return;
  }
  auto* nlh = nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(b_.get())), seq_++);
  if (genid) {
    mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(*genid));
  }
  done();
  first_ = seq_;
}

nlmsghdr* Batch::msg(std::uint16_t type, std::uint16_t family, std::uint16_t flags) {
  ++count_;
  last_ = seq_;
  return nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(b_.get())), type, family, flags | NLM_F_ACK, seq_++);
}

// A full page makes libnftnl allocate the next one.
void Batch::done() {
  if (nftnl_batch_update(b_.get()) < 0) fail(alloc_error("an nftables batch page"));
}

void Batch::finish() {
  if (error_) return;
  nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(b_.get())), seq_++);
  done();
}

NftSocket::NftSocket() : seq_(static_cast<std::uint32_t>(time(nullptr))) {}

Status NftSocket::open() {
  auto sock = open_mnl_socket(NETLINK_NETFILTER, 0, "nftables netlink");
  if (!sock) return sock.error();
  sock_ = std::move(*sock);
  int one = 1;
  // Kernel-side error strings, and ACKs without the echoed request (they are large).
  mnl_socket_setsockopt(sock_.get(), NETLINK_EXT_ACK, &one, sizeof one);
  mnl_socket_setsockopt(sock_.get(), NETLINK_CAP_ACK, &one, sizeof one);
  int buf = 16 << 20;
  setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
  setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
  portid_ = mnl_socket_get_portid(sock_.get());
  return ok_status();
}

Status NftSocket::commit(Batch& b) {
  b.finish();
  if (b.error()) return *b.error();
  int n = nftnl_batch_iovec_len(b.raw());
  std::vector<iovec> iov(static_cast<std::size_t>(n));
  nftnl_batch_iovec(b.raw(), iov.data(), static_cast<std::uint32_t>(n));
  std::size_t total = 0;
  for (auto& v : iov) total += v.iov_len;
  int sndbuf = static_cast<int>(std::max<std::size_t>(total + 4096, 16 << 20));
  setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  sockaddr_nl snl{};
  snl.nl_family = AF_NETLINK;
  msghdr mh{};
  mh.msg_name = &snl;
  mh.msg_namelen = sizeof snl;
  mh.msg_iov = iov.data();
  mh.msg_iovlen = iov.size();
  if (sendmsg(mnl_socket_get_fd(sock_.get()), &mh, 0) < 0) return nl_error(errno, "send nftables transaction", "");

  // nfnetlink processes the batch inside sendmsg: every ACK is queued by now.
  std::size_t acked = 0;
  std::optional<Error> first_error;
  std::vector<char> buf(1 << 16);
  while (acked < b.messages()) {
    ssize_t r = recv(mnl_socket_get_fd(sock_.get()), buf.data(), buf.size(), acked == 0 && !first_error ? 0 : MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;  // an aborted batch acks no further
      if (errno == EINTR) continue;
      return nl_error(errno, "read nftables acknowledgements", "outcome unknown; the agent will resync");
    }
    int len = static_cast<int>(r);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); nlmsg_fits(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      if (nlh->nlmsg_seq < b.first_seq() || nlh->nlmsg_seq > b.last_seq()) continue;  // not ours
      ++acked;
      auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0 && !first_error)
        first_error = nl_error(-err->error, "nftables rejected the transaction", extack_message(nlh));
    }
  }
  if (first_error) return *first_error;
  if (acked < b.messages())
    return Error{"nftables acknowledged " + std::to_string(acked) + " of " + std::to_string(b.messages()) +
                 " messages; outcome unknown, the agent will resync"};
  return ok_status();
}

Status NftSocket::request(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                          const std::function<void(nlmsghdr*)>& fill,
                          const std::function<void(const nlmsghdr*)>& cb) {
  std::vector<char> buf(1 << 20);
  auto* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags | NLM_F_ACK, seq_);
  const std::uint32_t seq = seq_++;
  if (fill) fill(nlh);
  if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return nl_error(errno, "nftables request", "");
  for (;;) {
    ssize_t r = mnl_socket_recvfrom(sock_.get(), buf.data(), buf.size());
    if (r < 0) return nl_error(errno, "nftables reply", "");
    int len = static_cast<int>(r);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); nlmsg_fits(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_seq != seq) continue;
      if (m->nlmsg_type == NLMSG_DONE) return ok_status();
      if (m->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (err->error == 0) return ok_status();
        return nl_error(-err->error, "nftables request", extack_message(m));
      }
      cb(m);
    }
  }
}

Result<std::uint32_t> NftSocket::genid() {
  std::uint32_t id = 0;
  auto st = request(NFT_MSG_GETGEN, AF_UNSPEC, 0, nullptr, [&](const nlmsghdr* m) {
    for_each_attr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) == NFTA_GEN_ID) id = ntohl(mnl_attr_get_u32(a));
    });
  });
  if (!st) return st.error();
  return id;
}

}  // namespace topowall::nft
