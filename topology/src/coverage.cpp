#include "topowall/topology/coverage.hpp"

#include <set>

#include "topowall/topology/schema.hpp"

namespace topowall::topology {

namespace {
long long secs(std::chrono::nanoseconds d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); }

void add_to_curve(WorkloadCoverage& c, TimePoint first_seen, TimePoint now, const CoverageConfig& cfg) {
  if (first_seen > now || cfg.bucket.count() <= 0) return;
  const auto back = static_cast<std::size_t>((now - first_seen) / cfg.bucket);  // 0: the newest bucket
  if (back < c.curve.size()) ++c.curve[c.curve.size() - 1 - back];
}
}  // namespace

std::map<std::string, WorkloadCoverage> coverage(const Graph& g, const std::vector<std::string>& workloads,
                                                 const SignalsFn& signals, TimePoint now, const CoverageConfig& cfg) {
  std::map<std::string, WorkloadCoverage> out;
  std::map<std::string, std::set<std::string>> peers;
  for (const auto& w : workloads) {
    auto& c = out[w];
    c.curve.assign(cfg.buckets, 0);
    if (auto it = g.workloads().find(w); it != g.workloads().end()) c.last_activity = it->second.first_seen;
  }
  // One pass over the edges, each counted for both of its ends.
  for (const auto& [k, e] : g.edges()) {
    for (const auto* end : {&k.src, &k.dst}) {
      auto it = out.find(*end);
      if (it == out.end() || (end == &k.dst && k.src == k.dst)) continue;
      auto& c = it->second;
      ++c.edges;
      peers[*end].insert(end == &k.src ? k.dst : k.src);
      if (!c.last_new_edge || e.first_seen > *c.last_new_edge) c.last_new_edge = e.first_seen;
      c.last_activity = std::max(c.last_activity, e.first_seen);
      add_to_curve(c, e.first_seen, now, cfg);
    }
  }
  // A flow held for review is something new the workload still finds.
  for (const auto& [k, p] : g.pending())
    for (const auto* end : {&k.src, &k.dst})
      if (auto it = out.find(*end); it != out.end()) {
        ++it->second.pending;
        it->second.last_activity = std::max(it->second.last_activity, p.first_seen);
      }
  for (auto& [w, c] : out) {
    c.peers = peers[w].size();
    auto s = signals ? signals(w) : LearningSignals{};
    if (s.last_attempt) c.last_activity = std::max(c.last_activity, *s.last_attempt);
    if (s.quarantine)
      c.verdict = "quarantined";
    else if (now - c.last_activity < cfg.quiet)
      c.verdict = "learning";
    else
      c.verdict = "converged";
    c.converged = c.verdict == "converged";
  }
  return out;
}

nlohmann::json coverage_to_json(const WorkloadCoverage& c, TimePoint now, const CoverageConfig& cfg) {
  nlohmann::json j{{"verdict", c.verdict},
                   {"converged", c.converged},
                   {"edges", c.edges},
                   {"peers", c.peers},
                   {"pending", c.pending},
                   {"quiet_for_seconds", std::max(0LL, secs(now - c.last_activity))},
                   {"converge_after_seconds", cfg.quiet.count()},
                   {"new_edge_curve", {{"bucket_seconds", cfg.bucket.count()}, {"counts", c.curve}}}};
  j["last_new_edge"] = c.last_new_edge ? nlohmann::json(format_time(*c.last_new_edge)) : nlohmann::json(nullptr);
  j["since_last_new_edge_seconds"] =
      c.last_new_edge ? nlohmann::json(std::max(0LL, secs(now - *c.last_new_edge))) : nlohmann::json(nullptr);
  return j;
}

}  // namespace topowall::topology
