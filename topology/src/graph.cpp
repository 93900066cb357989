#include "topowall/topology/graph.hpp"

#include <fmt/format.h>

namespace topowall::topology {

std::string_view to_string(EdgeState s) {
  switch (s) {
    case EdgeState::learned: return "learned";
    case EdgeState::approved: return "approved";
    case EdgeState::denied: return "denied";
  }
  return "?";
}

std::optional<EdgeState> parse_edge_state(std::string_view t) {
  for (auto s : {EdgeState::learned, EdgeState::approved, EdgeState::denied})
    if (to_string(s) == t) return s;
  return std::nullopt;
}

std::string EdgeKey::to_string() const {
  return fmt::format("{} -> {} {}/{}", src, dst, topowall::to_string(proto), port);
}

bool Graph::observe(const EdgeKey& key, TimePoint now, std::uint64_t count, EdgeState state) {
  auto [it, inserted] = edges_.try_emplace(key);
  auto& e = it->second;
  if (inserted) {
    e.state = state;
    e.first_seen = now;
  }
  e.count += count;
  if (now > e.last_seen) e.last_seen = now;
  if (inserted) pending_.erase(key);
  return inserted;
}

bool Graph::observe_pending(const EdgeKey& key, TimePoint now, std::uint64_t count) {
  auto [it, inserted] = pending_.try_emplace(key);
  auto& p = it->second;
  if (inserted) {
    p.id = next_pending_id_++;
    p.first_seen = now;
  }
  p.count += count;
  if (now > p.last_seen) p.last_seen = now;
  return inserted;
}

void Graph::note_workload(const std::string& name, const std::map<std::string, std::string>& labels,
                          TimePoint now) {
  auto [it, inserted] = workloads_.try_emplace(name);
  if (inserted) it->second.first_seen = now;
  it->second.labels = labels;
}

const EdgeInfo* Graph::find(const EdgeKey& key) const {
  auto it = edges_.find(key);
  return it == edges_.end() ? nullptr : &it->second;
}

bool Graph::erase(const EdgeKey& key) { return edges_.erase(key) > 0; }

}  // namespace topowall::topology
