#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace topowall::topology {

// "90s", "15m", "2h", "7d", "1h30m"; a bare number is seconds.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// 3725s -> "1h2m"; for tables.
std::string format_duration(std::chrono::seconds d);

}  // namespace topowall::topology
