#include "topowall/topology/duration.hpp"

#include <fmt/format.h>

namespace topowall::topology {

std::optional<std::chrono::seconds> parse_duration(std::string_view t) {
  if (t.empty()) return std::nullopt;
  long long total = 0, num = 0;
  bool have_num = false;
  for (char c : t) {
    if (c >= '0' && c <= '9') {
      num = num * 10 + (c - '0');
      if (num > 100LL * 365 * 86400) return std::nullopt;
      have_num = true;
      continue;
    }
    if (!have_num) return std::nullopt;
    long long unit = c == 's' ? 1 : c == 'm' ? 60 : c == 'h' ? 3600 : c == 'd' ? 86400 : c == 'w' ? 604800 : 0;
    if (!unit) return std::nullopt;
    total += num * unit;
    num = 0;
    have_num = false;
  }
  total += num;
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  long long s = d.count();
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace topowall::topology
