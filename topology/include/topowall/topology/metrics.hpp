// The agent's status as Prometheus text exposition (format 0.0.4).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace topowall::topology {

// `status` is the control API's `status` result. Every entry of its
// `counters` becomes `topowall_<name>_total` (a counter) unless it is a level
// (buffer sizes); sizes, flags and the mode become gauges. Unknown counters
// are exported too, so a new counter never needs a change here to be seen.
std::string prometheus_text(const nlohmann::json& status);

}  // namespace topowall::topology
