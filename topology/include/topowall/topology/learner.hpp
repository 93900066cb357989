// Turns conntrack flows into graph edges according to the mode in force.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/types.hpp"

namespace topowall::topology {

// Global mode plus per-workload overrides.
class ModeTable {
 public:
  Mode global = Mode::learn;
  std::map<std::string, Mode> overrides;
  Mode of(const std::string& workload) const;
  // The stricter of the two workload ends decides (enforce > monitor > learn).
  Mode effective(const std::string& src, bool src_is_workload, const std::string& dst,
                 bool dst_is_workload) const;
  bool operator==(const ModeTable&) const = default;
};

// Edge key of a flow, or nullopt when the flow involves no workload of this node.
std::optional<EdgeKey> edge_for(const FlowTuple& flow, const EndpointTable& endpoints);

enum class Outcome { new_edge, known_edge, pending_new, pending_repeat, denied, not_ours };

struct LearnerStats {
  std::uint64_t flows = 0;
  std::uint64_t new_edges = 0;
  std::uint64_t not_ours = 0;
  std::uint64_t pending = 0;
  std::uint64_t pending_evicted = 0;  // pending flows evicted to stay within the limits
};

class Learner {
 public:
  Learner(Graph& graph, const EndpointTable& endpoints, const ModeTable& modes, PendingLimits limits = {})
      : graph_(graph), endpoints_(endpoints), modes_(modes), limits_(limits) {}

  // `resync` marks a flow replayed from a conntrack dump: it may add a missed
  // edge but must not inflate counts of edges already known.
  Outcome observe(const FlowTuple& flow, TimePoint now, bool resync = false);

  // New edges per minute over the last `window`.
  double new_edge_rate(TimePoint now, std::chrono::seconds window = std::chrono::seconds(300)) const;
  const LearnerStats& stats() const { return stats_; }

 private:
  Graph& graph_;
  const EndpointTable& endpoints_;
  const ModeTable& modes_;
  PendingLimits limits_;
  LearnerStats stats_;
  std::deque<TimePoint> recent_new_;
};

}  // namespace topowall::topology
