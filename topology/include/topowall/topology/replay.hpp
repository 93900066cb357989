// Replay: the journal's recorded flows judged against a graph (a proposed one, or the live one plus
// approvals), so an operator sees which flows a change would have blocked before making it.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "topowall/topology/graph.hpp"
#include "topowall/topology/journal.hpp"

namespace topowall::topology {

// Whether enforcing `g` lets flows of `k` through at `at`: an edge learned or approved and not expired
// then. Denied or missing: blocked. (Replay judges as if every workload were enforced.)
bool graph_allows(const Graph& g, const EdgeKey& k, TimePoint at);

struct ReplayEdge {
  EdgeKey key;
  std::uint64_t flows = 0;
  std::uint64_t recorded_blocked = 0;  // of them, blocked when recorded
  std::uint32_t first_minute = 0, last_minute = 0;
};

struct ReplayResult {
  std::vector<ReplayEdge> allowed, blocked;  // most flows first
  std::uint64_t allowed_flows = 0, blocked_flows = 0;
  std::uint64_t records = 0;
};

class Replay {
 public:
  // Records of minutes before `from_minute` are skipped.
  Replay(const Graph& g, std::uint32_t from_minute) : graph_(g), from_(from_minute) {}
  void add(const JournalRecord& r);
  [[nodiscard]] ReplayResult result() const;

 private:
  const Graph& graph_;
  std::uint32_t from_;
  std::uint64_t records_ = 0;
  std::map<EdgeKey, ReplayEdge> allowed_, blocked_;
};

// {"records", "allowed": {"flows", "edges": [...], "omitted"}, "blocked": {...}}: at most `max_edges`
// edges per group (the most flows first), so a scan's thousands of edges cannot outgrow an answer line.
nlohmann::json replay_to_json(const ReplayResult& r, std::size_t max_edges);

}  // namespace topowall::topology
