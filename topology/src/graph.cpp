#include "topowall/topology/graph.hpp"

#include <fmt/format.h>

#include <algorithm>

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
  const bool inserted = edges_.upsert(key, [&](EdgeInfo& e, bool fresh) {
    if (fresh) {
      e.state = state;
      e.first_seen = now;
    }
    e.count += count;
    if (now > e.last_seen) e.last_seen = now;
  });
  if (inserted) (void)take_pending(key);
  return inserted;
}

PendingObserved Graph::observe_pending(const EdgeKey& key, TimePoint now, const PendingLimits& limits,
                                       std::uint64_t count, const std::string& reason) {
  PendingObserved r;
  if (auto it = pending_.find(key); it != pending_.end()) {
    auto& p = it->second;
    p.count += count;
    if (p.reason.empty()) p.reason = reason;
    if (now > p.last_seen) {
      unindex(key, p.last_seen);
      p.last_seen = now;
      index(key, p.last_seen);
    }
    return r;
  }
  // Room first: the source's own bound, then the table's.
  auto src = pending_by_src_.find(key.src);
  if (src != pending_by_src_.end() && src->second.size() >= std::max<std::size_t>(limits.per_source, 1))
    r.evicted += evict_oldest_of(key.src);
  if (pending_.size() >= std::max<std::size_t>(limits.total, 1))
    r.evicted += evict_oldest_of(key.src) || evict_oldest();
  PendingFlow p;
  p.id = next_pending_id_++;
  p.count = count;
  p.first_seen = p.last_seen = now;
  p.reason = reason;
  restore_pending(key, p);
  r.inserted = true;
  return r;
}

std::size_t Graph::bound_pending(const PendingLimits& limits) {
  std::size_t evicted = 0;
  const auto per_source = std::max<std::size_t>(limits.per_source, 1);
  for (auto& [src, seen] : pending_by_src_)
    while (seen.size() > per_source) {
      pending_.erase(seen.begin()->second);
      seen.erase(seen.begin());
      ++evicted;
    }
  std::erase_if(pending_by_src_, [](const auto& kv) { return kv.second.empty(); });
  while (pending_.size() > std::max<std::size_t>(limits.total, 1) && evict_oldest()) ++evicted;
  return evicted;
}

std::optional<PendingFlow> Graph::take_pending(const EdgeKey& key) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return std::nullopt;
  auto p = it->second;
  unindex(key, p.last_seen);
  pending_.erase(it);
  return p;
}

void Graph::restore_pending(const EdgeKey& key, const PendingFlow& flow) {
  (void)take_pending(key);
  pending_[key] = flow;
  index(key, flow.last_seen);
}

void Graph::index(const EdgeKey& key, TimePoint last_seen) { pending_by_src_[key.src].emplace(last_seen, key); }

void Graph::unindex(const EdgeKey& key, TimePoint last_seen) {
  auto it = pending_by_src_.find(key.src);
  if (it == pending_by_src_.end()) return;
  it->second.erase({last_seen, key});
  if (it->second.empty()) pending_by_src_.erase(it);  // sources come and go
}

bool Graph::evict_oldest_of(const std::string& src) {
  auto it = pending_by_src_.find(src);
  if (it == pending_by_src_.end()) return false;
  const auto key = it->second.begin()->second;  // a copy: take_pending erases the original
  (void)take_pending(key);
  return true;
}

bool Graph::evict_oldest() {
  // One look per source, and sources are few (workloads, host, world, the named networks).
  auto oldest = pending_by_src_.end();
  for (auto s = pending_by_src_.begin(); s != pending_by_src_.end(); ++s)
    if (oldest == pending_by_src_.end() || *s->second.begin() < *oldest->second.begin()) oldest = s;
  return oldest != pending_by_src_.end() && evict_oldest_of(oldest->first);
}

void Graph::note_workload(const std::string& name, const std::map<std::string, std::string>& labels,
                          TimePoint now) {
  auto [it, inserted] = workloads_.try_emplace(name);
  if (inserted) it->second.first_seen = now;
  it->second.labels = labels;
}

}  // namespace topowall::topology
