#include "conntrack/ct_dump.hpp"

#include "common/descriptor.hpp"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>
#include <utility>

namespace topowall::conntrack {

CtAsyncDump::CtAsyncDump(boost::asio::io_context& io, EntryFn entry, DoneFn done)
    : io_(io), entry_(std::move(entry)), done_(std::move(done)), buf_(MNL_SOCKET_BUFFER_SIZE * 4) {}

CtAsyncDump::~CtAsyncDump() { cancel(); }

Status CtAsyncDump::start() {
  cancel();
  auto opened = open_mnl_socket(NETLINK_NETFILTER, 0, "ctnetlink dump");
  if (!opened) return opened.error();
  auto* nlh = mnl_nlmsg_put_header(buf_.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  seq_ = static_cast<unsigned>(time(nullptr));
  nlh->nlmsg_seq = seq_;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;  // both IPv4 and IPv6
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (mnl_socket_sendto(opened->get(), nlh, nlh->nlmsg_len) < 0) return netlink_error("request conntrack dump", errno);
  sock_ = std::move(*opened);
  portid_ = mnl_socket_get_portid(sock_.get());
  sd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, mnl_socket_get_fd(sock_.get()));
  arm();
  return ok_status();
}

void CtAsyncDump::cancel() {
  release_descriptor(sd_);  // the mnl socket owns the fd
  sock_.reset();
}

void CtAsyncDump::arm() {
  sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (!ec) turn();  // an error is a cancel: the dump was dropped or restarted
  });
}

int CtAsyncDump::on_message(const nlmsghdr* nlh, void* self) {
  auto* d = static_cast<CtAsyncDump*>(self);
  ++d->in_turn_;
  d->entry_(nlh);  // the owner's handler catches its own exceptions
  return MNL_CB_OK;
}

void CtAsyncDump::turn() {
  ++turns_;
  in_turn_ = 0;
  const int fd = mnl_socket_get_fd(sock_.get());
  // A datagram is parsed whole, so a turn ends after the one that crossed the bound.
  while (in_turn_ < kEntriesPerTurn) {
    ssize_t n = recv(fd, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      return finish(netlink_error("read conntrack dump", errno));
    }
    int r = mnl_cb_run(buf_.data(), static_cast<size_t>(n), seq_, portid_, &CtAsyncDump::on_message, this);
    if (r == MNL_CB_STOP) return finish(ok_status());
    if (r < 0) return finish(netlink_error("parse conntrack dump", errno));
  }
  arm();
}

void CtAsyncDump::finish(Status s) {
  cancel();
  done_(std::move(s));  // last: it may start the next dump
}

}  // namespace topowall::conntrack
