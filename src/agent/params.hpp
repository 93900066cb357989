// Typed reads of control request parameters, written once.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "topowall/types.hpp"

namespace topowall::agent {

// Non-negative integer, whether it arrived signed or unsigned.
inline std::optional<std::uint64_t> as_uint(const nlohmann::json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  return std::nullopt;
}

inline std::optional<std::uint64_t> uint_param(const nlohmann::json& params, const char* key) {
  auto it = params.find(key);
  return it == params.end() ? std::nullopt : as_uint(*it);
}

// A window from now (`for_seconds`): at most 100 years, so that now plus it stays within the clock's
// 64-bit nanoseconds (a larger one overflowed them: undefined behaviour, found by fuzz_control).
inline constexpr std::uint64_t kMaxForSeconds = 3'155'760'000;
struct SecondsParam {
  bool valid = true;                        // absent, or 0..kMaxForSeconds
  std::optional<std::chrono::seconds> value;  // when present and valid
};
inline SecondsParam seconds_param(const nlohmann::json& params, const char* key) {
  auto it = params.find(key);
  if (it == params.end()) return {};
  auto n = as_uint(*it);
  if (!n || *n > kMaxForSeconds) return {false, std::nullopt};
  return {true, std::chrono::seconds(static_cast<std::int64_t>(*n))};
}

// `proto` (tcp, udp, sctp, icmp, icmpv6) and `port` (0-65535; the icmp type for icmp).
inline std::optional<std::pair<Proto, std::uint16_t>> proto_port(const nlohmann::json& params) {
  auto proto = parse_proto(params.value("proto", ""));
  auto port = uint_param(params, "port");
  if (!proto || !port || *port > 65535) return std::nullopt;
  return std::pair{*proto, static_cast<std::uint16_t>(*port)};
}

}  // namespace topowall::agent
