#include "table.hpp"

#include <algorithm>

#include "topowall/topology/duration.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::cli {

std::string Table::render() const {
  std::vector<std::size_t> w(header_.size(), 0);
  auto widen = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  };
  widen(header_);
  for (const auto& r : rows_) widen(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    std::string l;
    for (std::size_t i = 0; i < w.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      l += cell;
      if (i + 1 < w.size()) l += std::string(w[i] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header_);
  for (const auto& r : rows_) line(r);
  return out;
}

std::string relative_time(const std::string& text) {
  auto t = topology::parse_time(text);
  if (!t) return text;
  auto d = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - *t);
  if (d.count() < 0) return "in " + topology::format_duration(-d);
  return topology::format_duration(d) + " ago";
}

}  // namespace topowall::cli
