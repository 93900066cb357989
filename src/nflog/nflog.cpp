#include "nflog/nflog.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/netlink.hpp"

namespace topowall::nflog {

namespace {

// 2200-01-01: later timestamps are not converted (the clock's nanoseconds end in 2262).
constexpr std::uint64_t kMaxTimestampSec = 7258118400;

int collect(const nlattr* attr, void* data) {
  auto** tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(attr);
  if (type >= 0 && type <= NFULA_MAX) tb[type] = attr;
  return MNL_CB_OK;
}

bool l4(FlowTuple& f, int proto, const std::uint8_t* p, std::size_t len) {
  auto pr = proto_from_number(proto);
  if (!pr) return false;
  f.proto = *pr;
  if (is_icmp(*pr)) {
    if (len < 1) return false;
    f.icmp_type = p[0];
    return true;
  }
  if (len < 4) return false;
  f.sport = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
  f.dport = static_cast<std::uint16_t>(p[2] << 8 | p[3]);
  return true;
}

}  // namespace

std::optional<FlowTuple> parse_arp(const std::uint8_t* d, std::size_t len) {
  // htype(2) ptype(2) hlen(1) plen(1) oper(2) sha spa tha tpa: only IPv4 over anything.
  if (len < 8) return std::nullopt;
  std::size_t hlen = d[4], plen = d[5];
  if ((d[2] << 8 | d[3]) != 0x0800 || plen != 4 || len < 8 + 2 * hlen + 8) return std::nullopt;
  FlowTuple f;
  f.src.family = f.dst.family = AF_INET;
  std::memcpy(f.src.bytes.data(), d + 8 + hlen, 4);
  std::memcpy(f.dst.bytes.data(), d + 8 + 2 * hlen + 4, 4);
  return f;
}

std::optional<FlowTuple> parse_packet(const std::uint8_t* d, std::size_t len) {
  if (len < 1) return std::nullopt;
  FlowTuple f;
  int version = d[0] >> 4;
  if (version == 4) {
    if (len < 20) return std::nullopt;
    std::size_t ihl = static_cast<std::size_t>(d[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl) return std::nullopt;
    f.src.family = AF_INET;
    f.dst.family = AF_INET;
    std::memcpy(f.src.bytes.data(), d + 12, 4);
    std::memcpy(f.dst.bytes.data(), d + 16, 4);
    if (!l4(f, d[9], d + ihl, len - ihl)) return std::nullopt;
    return f;
  }
  if (version == 6) {
    if (len < 40) return std::nullopt;
    f.src.family = AF_INET6;
    f.dst.family = AF_INET6;
    std::memcpy(f.src.bytes.data(), d + 8, 16);
    std::memcpy(f.dst.bytes.data(), d + 24, 16);
    int next = d[6];
    std::size_t off = 40;
    // Walk the common extension headers to the transport header.
    while ((next == 0 || next == 43 || next == 60) && off + 8 <= len) {
      next = d[off];
      off += (static_cast<std::size_t>(d[off + 1]) + 1) * 8;
    }
    if (off > len || !l4(f, next, d + off, len - off)) return std::nullopt;
    return f;
  }
  return std::nullopt;
}

std::optional<LoggedPacket> decode_nflog_message(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_ULOG || (nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET) return std::nullopt;
  const nlattr* tb[NFULA_MAX + 1] = {};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, tb) < 0) return std::nullopt;
  if (!tb[NFULA_PREFIX] || !tb[NFULA_PAYLOAD]) return std::nullopt;
  // Bounded by the attribute: a prefix without its NUL, last in the datagram, was read past its end.
  const auto* raw = static_cast<const char*>(mnl_attr_get_payload(tb[NFULA_PREFIX]));
  const std::string prefix(raw, strnlen(raw, mnl_attr_get_payload_len(tb[NFULA_PREFIX])));
  if (prefix.rfind("topowall:", 0) != 0) return std::nullopt;
  // The bridge family logs ARP too (the guard checks its sender address): the link header says which.
  bool arp = false;
  if (tb[NFULA_PACKET_HDR] && mnl_attr_get_payload_len(tb[NFULA_PACKET_HDR]) >= sizeof(nfulnl_msg_packet_hdr)) {
    nfulnl_msg_packet_hdr hdr;
    std::memcpy(&hdr, mnl_attr_get_payload(tb[NFULA_PACKET_HDR]), sizeof hdr);
    arp = ntohs(hdr.hw_protocol) == 0x0806;
  }
  const auto* payload = static_cast<const std::uint8_t*>(mnl_attr_get_payload(tb[NFULA_PAYLOAD]));
  const auto payload_len = mnl_attr_get_payload_len(tb[NFULA_PAYLOAD]);
  auto flow = arp ? parse_arp(payload, payload_len) : parse_packet(payload, payload_len);
  if (!flow) return std::nullopt;
  LoggedPacket p;
  p.flow = *flow;
  p.arp = arp;
  // "topowall:<drop|pass>[:<reason>]"
  auto verdict = prefix.substr(9, prefix.find(':', 9) - 9);
  p.dropped = verdict == "drop";
  if (auto c = prefix.find(':', 9); c != std::string::npos) p.reason = prefix.substr(c + 1);
  // Logged from the bridge family, INDEV is the bridge and PHYSINDEV the port the packet came in on.
  for (auto attr : {NFULA_IFINDEX_INDEV, NFULA_IFINDEX_PHYSINDEV})
    if (tb[attr] && mnl_attr_get_payload_len(tb[attr]) >= 4) p.indev = ntohl(mnl_attr_get_u32(tb[attr]));
  p.when = Clock::now();
  if (tb[NFULA_TIMESTAMP] && mnl_attr_get_payload_len(tb[NFULA_TIMESTAMP]) >= sizeof(nfulnl_msg_packet_timestamp)) {
    // Netlink attributes are 4-byte aligned; the struct wants 8: copy it out (a bridge-family log put
    // it at an address UBSan rightly refused to read in place).
    nfulnl_msg_packet_timestamp ts;
    std::memcpy(&ts, mnl_attr_get_payload(tb[NFULA_TIMESTAMP]), sizeof ts);
    auto sec = be64toh(ts.sec), usec = be64toh(ts.usec);
    // Only what the clock's nanoseconds hold is converted: 2^63 seconds overflowed it (undefined
    // behaviour, found by fuzz_nflog). Packets without a receive timestamp carry zero: our own clock then.
    if (sec < kMaxTimestampSec && usec < 1000000) {
      auto t = TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(sec) + std::chrono::microseconds(usec)));
      if (t > p.when - std::chrono::minutes(1) && t < p.when + std::chrono::minutes(1)) p.when = t;
    }
  }
  return p;
}

NflogListener::~NflogListener() { stop(); }

Status NflogListener::configure() {
  // Bind our group, copy 128 bytes of each packet, flush every message at once.
  std::vector<char> storage(8192);
  char* buf = storage.data();
  auto send = [&](auto fill) -> Status {
    auto* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = 1;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_UNSPEC;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = htons(group_);
    fill(nlh);
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) return netlink_error("nflog config", errno);
    ssize_t n = mnl_socket_recvfrom(sock_.get(), buf, storage.size());
    if (n < 0) return netlink_error("nflog config reply", errno);
    if (mnl_cb_run(buf, static_cast<size_t>(n), 0, 0, nullptr, nullptr) < 0)
      return Error{"nflog group " + std::to_string(group_) + ": " + strerror(errno) +
                       (errno == EBUSY ? " (another program holds this group; choose --nflog-group)" : ""),
                   errno};
    return ok_status();
  };
  if (auto st = send([](nlmsghdr* nlh) {
        nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_BIND};
        mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
      });
      !st)
    return st;
  return send([](nlmsghdr* nlh) {
    nfulnl_msg_config_mode mode{};
    mode.copy_range = htonl(128);
    mode.copy_mode = NFULNL_COPY_PACKET;
    mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
    mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(1));
    mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT, htonl(1));
  });
}

Status NflogListener::start(AlertHandler handler) {
  handler_ = std::move(handler);
  auto sock = open_mnl_socket(NETLINK_NETFILTER, 0, "nflog");
  if (!sock) return sock.error();
  sock_ = std::move(*sock);
  if (auto st = configure(); !st) return st;
  int size = 8 << 20;
  setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  sd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, mnl_socket_get_fd(sock_.get()));
  sd_->non_blocking(true);
  arm();
  return ok_status();
}

void NflogListener::stop() {
  if (sd_) {
    boost::system::error_code ec;
    sd_->cancel(ec);
    sd_->release();
    sd_.reset();
  }
  sock_.reset();
}

void NflogListener::arm() {
  sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec || !sd_) return;
    drain();
    if (sd_) arm();
  });
}

void NflogListener::drain() {
  int fd = mnl_socket_get_fd(sock_.get());
  for (int i = 0; i < 256; ++i) {
    ssize_t n = recv(fd, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (errno == ENOBUFS) {
        // Lost log messages: counted; the ruleset's counters keep the totals.
        ++stats_.enobufs;
        continue;
      }
      ++stats_.errors;
      return;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data()); nlmsg_fits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      auto p = decode_nflog_message(nlh);
      if (!p) {
        ++stats_.undecodable;
        continue;
      }
      ++stats_.packets;
      try {
        handler_(*p);
      } catch (const std::exception& e) {
        spdlog::error("alert handler failed: {}", e.what());
      }
    }
  }
}

}  // namespace topowall::nflog
