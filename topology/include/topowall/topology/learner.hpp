// Turns conntrack flows into graph edges according to the mode in force.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/learn_guard.hpp"
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

// new_edge: learned. held_new: a new edge kept pending for review (quarantine, world). unanswered: an
// attempt, a refusal or an end without answer: nothing learned. ignored: nothing to learn.
enum class Outcome { new_edge, known_edge, pending_new, pending_repeat, held_new, denied, not_ours, unanswered, ignored };

struct LearnerStats {
  std::uint64_t flows = 0;
  std::uint64_t new_edges = 0;
  std::uint64_t not_ours = 0;
  std::uint64_t pending = 0;
  std::uint64_t pending_evicted = 0;  // pending flows evicted to stay within the limits
  std::uint64_t unanswered = 0;       // connections that ended without an answer
  std::uint64_t refused = 0;          // connections refused (a TCP reset)
  std::uint64_t held = 0;             // new edges held for review while learning (quarantine, world)
  std::uint64_t quarantines = 0;      // workloads put in quarantine (a scan, a fan-out)
  std::uint64_t one_way_learned = 0;  // unanswered UDP flows learned because they repeated
};

// Per workload (the source, or the destination when the source is none): what learning did not trust.
struct WorkloadAttempts {
  std::uint64_t unanswered = 0;
  std::uint64_t refused = 0;
  std::uint64_t held = 0;
  std::uint64_t quarantines = 0;
  std::optional<TimePoint> last_attempt;  // its last attempt (as the source) at an edge not in the graph
};

class Learner {
 public:
  using QuarantineFn = std::function<void(const std::string& workload, const std::string& reason, const EdgeKey&)>;

  Learner(Graph& graph, const EndpointTable& endpoints, const ModeTable& modes, PendingLimits limits = {},
          LearnConfig cfg = {})
      : graph_(graph), endpoints_(endpoints), modes_(modes), limits_(limits), cfg_(cfg) {}

  // Only an answered flow is learned (see FlowPhase). `resync` marks a flow replayed from a conntrack
  // dump: it may add a missed edge but must not inflate counts of edges already known.
  Outcome observe(const FlowTuple& flow, TimePoint now, bool resync = false);
  // Called when a workload is put in quarantine (the agent raises an alert naming it).
  void set_on_quarantine(QuarantineFn f) { on_quarantine_ = std::move(f); }

  // New edges per minute over the last `window`.
  double new_edge_rate(TimePoint now, std::chrono::seconds window = std::chrono::seconds(300)) const;
  const LearnerStats& stats() const { return stats_; }
  const std::map<std::string, WorkloadAttempts>& attempts() const { return attempts_; }
  // The quarantine reason while the workload's new edges are held, as last judged.
  std::optional<std::string> quarantine_of(const std::string& workload) const { return fanout_.reason_of(workload); }
  // Age the quarantine windows to `now` (so a quarantine lifts even when the workload goes quiet).
  bool quarantined(const std::string& workload, TimePoint now) { return fanout_.quarantined(workload, now, cfg_).has_value(); }
  const LearnConfig& config() const { return cfg_; }

 private:
  bool learning(const EdgeKey& k) const;
  const std::string& owner(const EdgeKey& k) const;
  Outcome learn_new(const EdgeKey& key, TimePoint now);
  Outcome not_answered(const EdgeKey& key, const FlowTuple& flow, bool known, TimePoint now, bool resync);
  void note_new_key(const EdgeKey& key, TimePoint now);
  std::optional<std::string> hold_reason(const EdgeKey& key, TimePoint now);

  Graph& graph_;
  const EndpointTable& endpoints_;
  const ModeTable& modes_;
  PendingLimits limits_;
  LearnConfig cfg_;
  LearnerStats stats_;
  std::deque<TimePoint> recent_new_;
  FanOutGuard fanout_;
  OneWayTracker one_way_;
  std::map<std::string, WorkloadAttempts> attempts_;
  QuarantineFn on_quarantine_ = [](const auto&, const auto&, const auto&) {};
};

}  // namespace topowall::topology
