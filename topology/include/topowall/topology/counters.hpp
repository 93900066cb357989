// Every counter and gauge of `status.counters`, declared once: its name, what it counts, its kind and
// whether it is a degraded path. This one table feeds `status`, `/metrics` (help and type) and the
// counters section of docs/PROTOCOL.md (a test fails when they differ).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace topowall::topology {

struct CounterInfo {
  std::string_view name;
  std::string_view help;
  bool gauge = false;     // a level (a buffer size), not a running total
  bool degraded = false;  // counts a path where the agent works in a degraded way
};

std::span<const CounterInfo> counter_table();
const CounterInfo* find_counter(std::string_view name);
// The table as the Markdown rows of docs/PROTOCOL.md's counters section.
std::string counters_markdown();

}  // namespace topowall::topology
