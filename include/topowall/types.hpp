// Value types shared by the pure core, the adapters and the CLI.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace topowall {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

enum class Proto : std::uint8_t { icmp = 1, tcp = 6, udp = 17, icmpv6 = 58, sctp = 132 };

std::optional<Proto> proto_from_number(int number);
std::string_view to_string(Proto proto);
std::optional<Proto> parse_proto(std::string_view text);
// icmp and icmpv6 edges are keyed by icmp type instead of a destination port.
constexpr bool is_icmp(Proto p) { return p == Proto::icmp || p == Proto::icmpv6; }

enum class Mode { learn, monitor, enforce };
std::string_view to_string(Mode mode);
std::optional<Mode> parse_mode(std::string_view text);

// An IPv4 or IPv6 address held by value (v4 uses the first 4 bytes).
struct IpAddr {
  std::uint8_t family = 0;  // AF_INET or AF_INET6; 0 = unset
  std::array<std::uint8_t, 16> bytes{};

  static std::optional<IpAddr> parse(std::string_view text);
  static IpAddr v4(std::uint32_t host_order);
  std::string to_string() const;
  bool is_v4() const;
  std::size_t size() const { return is_v4() ? 4 : 16; }
  auto operator<=>(const IpAddr&) const = default;
};

struct Cidr {
  IpAddr addr;
  int prefix = 0;
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const IpAddr& ip) const;
  std::string to_string() const;
  auto operator<=>(const Cidr&) const = default;
};

// What conntrack said of a connection when it reported it. Only a conversation is learned: an
// unanswered SYN, a reset, a probe of a closed UDP port or a scan teaches nothing.
enum class FlowPhase : std::uint8_t {
  answered,    // the destination answered: a TCP handshake completed, a UDP/ICMP reply seen
  attempt,     // opened, no answer yet (a SYN, a first datagram)
  progress,    // a later change of a connection already reported: nothing to learn
  unanswered,  // ended without any answer
  refused,     // ended answered only by a refusal (a TCP reset)
};
std::string_view to_string(FlowPhase phase);

// One connection as conntrack reports it: the original direction, with the real
// destination taken from the reply tuple when the flow was DNATed.
struct FlowTuple {
  IpAddr src;
  IpAddr dst;
  Proto proto = Proto::tcp;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;    // tcp/udp/sctp
  std::uint8_t icmp_type = 0; // icmp/icmpv6
  // Built by hand (tests, fakes), a flow is a conversation; the conntrack decoder always says which.
  FlowPhase phase = FlowPhase::answered;
};

}  // namespace topowall
