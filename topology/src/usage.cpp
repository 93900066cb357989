#include "topowall/topology/usage.hpp"

#include <algorithm>

namespace topowall::topology {

TimePoint last_use(const EdgeInfo& e) {
  if (e.last_used) return *e.last_used;
  return e.last_seen != TimePoint{} ? e.last_seen : e.first_seen;
}

bool note_used(Graph& g, const EdgeKey& k, TimePoint now) {
  if (!g.edges().contains(k)) return false;
  (void)g.edges().upsert(k, [now](EdgeInfo& e, bool) {
    if (!e.last_used || *e.last_used < now) e.last_used = now;  // a late (held) flow never moves it back
  });
  return true;
}

bool is_stale(const EdgeInfo& e, TimePoint now, std::chrono::seconds unused_for) {
  return e.state != EdgeState::denied && last_use(e) + unused_for <= now;
}

std::vector<StaleEdge> stale_edges(const Graph& g, TimePoint now, std::chrono::seconds unused_for) {
  std::vector<StaleEdge> out;
  for (const auto& [k, e] : g.edges())
    if (is_stale(e, now, unused_for)) out.push_back({k, e.state, last_use(e)});
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.last_use < b.last_use; });
  return out;
}

}  // namespace topowall::topology
