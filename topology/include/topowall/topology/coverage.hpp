// How far learning got, per workload (pure, time passed in): when it last found a new edge, the curve of
// new edges over time, its distinct peers, and whether it has converged (nothing new for a quiet period,
// no attempt at something new, not quarantined). Auto-promotion waits for that verdict.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

struct CoverageConfig {
  std::chrono::seconds quiet{600};   // converged after this long without anything new
  std::chrono::seconds bucket{60};   // the curve's bucket
  std::size_t buckets = 30;          // the curve's length (the newest bucket ends now)
};

// What the learner knows of a workload beyond the graph.
struct LearningSignals {
  std::optional<TimePoint> last_attempt;  // its last attempt at an edge not in the graph (answered or not)
  std::optional<std::string> quarantine;  // the reason while it is quarantined
};
using SignalsFn = std::function<LearningSignals(const std::string& workload)>;

struct WorkloadCoverage {
  std::optional<TimePoint> last_new_edge;
  TimePoint last_activity{};          // the newest of: first seen, new edge, held edge, attempt
  std::vector<std::uint64_t> curve;   // new edges per bucket, oldest first
  std::size_t edges = 0, peers = 0, pending = 0;
  std::string verdict;                // "converged", "learning", "quarantined"
  bool converged = false;
};

std::map<std::string, WorkloadCoverage> coverage(const Graph& g, const std::vector<std::string>& workloads,
                                                 const SignalsFn& signals, TimePoint now, const CoverageConfig& cfg);
nlohmann::json coverage_to_json(const WorkloadCoverage& c, TimePoint now, const CoverageConfig& cfg);

}  // namespace topowall::topology
