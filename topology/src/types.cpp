#include "topowall/types.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace topowall {

std::optional<Proto> proto_from_number(int n) {
  switch (n) {
    case 1: return Proto::icmp;
    case 6: return Proto::tcp;
    case 17: return Proto::udp;
    case 58: return Proto::icmpv6;
    case 132: return Proto::sctp;
    default: return std::nullopt;
  }
}

std::string_view to_string(Proto p) {
  switch (p) {
    case Proto::icmp: return "icmp";
    case Proto::tcp: return "tcp";
    case Proto::udp: return "udp";
    case Proto::icmpv6: return "icmpv6";
    case Proto::sctp: return "sctp";
  }
  return "?";
}

std::optional<Proto> parse_proto(std::string_view t) {
  for (Proto p : {Proto::icmp, Proto::tcp, Proto::udp, Proto::icmpv6, Proto::sctp})
    if (to_string(p) == t) return p;
  return std::nullopt;
}

std::string_view to_string(FlowPhase p) {
  switch (p) {
    case FlowPhase::answered: return "answered";
    case FlowPhase::attempt: return "attempt";
    case FlowPhase::progress: return "progress";
    case FlowPhase::unanswered: return "unanswered";
    case FlowPhase::refused: return "refused";
  }
  return "?";
}

std::string_view to_string(Mode m) {
  switch (m) {
    case Mode::learn: return "learn";
    case Mode::monitor: return "monitor";
    case Mode::enforce: return "enforce";
  }
  return "?";
}

std::optional<Mode> parse_mode(std::string_view t) {
  for (Mode m : {Mode::learn, Mode::monitor, Mode::enforce})
    if (to_string(m) == t) return m;
  return std::nullopt;
}

// inet_pton/ntop are pure conversions (no syscalls), fine for the core.
std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

IpAddr IpAddr::v4(std::uint32_t h) {
  IpAddr a;
  a.family = AF_INET;
  a.bytes[0] = h >> 24;
  a.bytes[1] = h >> 16;
  a.bytes[2] = h >> 8;
  a.bytes[3] = h;
  return a;
}

bool IpAddr::is_v4() const { return family == AF_INET; }

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 0) return "";
  inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  int max = ip->is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto rest = text.substr(slash + 1);
    if (rest.empty() || rest.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : rest) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  Cidr c{*ip, prefix};
  // Normalise host bits away so equal networks compare equal.
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(prefix - i * 8, 0, 8);
    c.addr.bytes[i] &= static_cast<std::uint8_t>(0xff00 >> keep);
  }
  return c;
}

bool Cidr::contains(const IpAddr& ip) const {
  if (ip.family != addr.family) return false;
  int full = prefix / 8, rem = prefix % 8;
  if (std::memcmp(ip.bytes.data(), addr.bytes.data(), full) != 0) return false;
  if (rem == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff00 >> rem);
  return (ip.bytes[full] & mask) == (addr.bytes[full] & mask);
}

std::string Cidr::to_string() const { return addr.to_string() + "/" + std::to_string(prefix); }

}  // namespace topowall
