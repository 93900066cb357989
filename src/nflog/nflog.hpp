// NFLOG subscriber: the packets the ruleset logs, decoded with libmnl.
#pragma once

#include <linux/netlink.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/handles.hpp"
#include "topowall/alert_source.hpp"

namespace topowall::nflog {

// IPv4/IPv6 header bytes -> flow (pure).
// An ARP packet (IPv4): sender address as src, target address as dst; nullopt if not IPv4 ARP.
std::optional<FlowTuple> parse_arp(const std::uint8_t* data, std::size_t len);
std::optional<FlowTuple> parse_packet(const std::uint8_t* data, std::size_t len);
// One NFULNL_MSG_PACKET -> logged packet; nullopt when not ours or not decodable.
std::optional<LoggedPacket> decode_nflog_message(const nlmsghdr* nlh);

class NflogListener final : public AlertSource {
 public:
  NflogListener(boost::asio::io_context& io, std::uint16_t group) : io_(io), group_(group), buf_(1 << 16) {}
  ~NflogListener() override;
  [[nodiscard]] Status start(AlertHandler handler) override;
  void stop() override;
  AlertSourceStats stats() const override { return stats_; }

 private:
  [[nodiscard]] Status configure();
  void arm();
  void drain();

  boost::asio::io_context& io_;
  std::uint16_t group_;
  AlertHandler handler_;
  MnlSocketPtr sock_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  std::vector<char> buf_;
  AlertSourceStats stats_;
};

}  // namespace topowall::nflog
