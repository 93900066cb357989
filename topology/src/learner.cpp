#include "topowall/topology/learner.hpp"

#include <algorithm>

#include "topowall/topology/identity.hpp"

namespace topowall::topology {

namespace {
int strictness(Mode m) { return m == Mode::enforce ? 2 : m == Mode::monitor ? 1 : 0; }
}  // namespace

Mode ModeTable::of(const std::string& w) const {
  auto it = overrides.find(w);
  return it == overrides.end() ? global : it->second;
}

Mode ModeTable::effective(const std::string& src, bool src_is_workload, const std::string& dst,
                          bool dst_is_workload) const {
  // Only workload ends vote (host, world and external networks have no mode);
  // the stricter vote wins.
  if (!src_is_workload && !dst_is_workload) return global;
  if (!src_is_workload) return of(dst);
  if (!dst_is_workload) return of(src);
  Mode a = of(src), b = of(dst);
  return strictness(a) >= strictness(b) ? a : b;
}

std::optional<EdgeKey> edge_for(const FlowTuple& f, const EndpointTable& endpoints) {
  EdgeKey k;
  k.src = endpoints.resolve(f.src);
  k.dst = endpoints.resolve(f.dst);
  // Only flows touching a workload of this node belong to the graph.
  if (!endpoints.is_workload(k.src) && !endpoints.is_workload(k.dst)) return std::nullopt;
  k.proto = f.proto;
  k.port = is_icmp(f.proto) ? f.icmp_type : f.dport;
  return k;
}

Outcome Learner::observe(const FlowTuple& flow, TimePoint now, bool resync) {
  ++stats_.flows;
  auto key = edge_for(flow, endpoints_);
  if (!key) {
    ++stats_.not_ours;
    return Outcome::not_ours;
  }
  if (const auto* e = graph_.find(*key)) {
    if (e->state == EdgeState::denied) return Outcome::denied;
    if (!resync) graph_.observe(*key, now);
    return Outcome::known_edge;
  }
  if (modes_.effective(key->src, endpoints_.is_workload(key->src), key->dst,
                        endpoints_.is_workload(key->dst)) == Mode::learn) {
    graph_.observe(*key, now);
    ++stats_.new_edges;
    recent_new_.push_back(now);
    while (recent_new_.size() > 10000) recent_new_.pop_front();
    return Outcome::new_edge;
  }
  ++stats_.pending;
  auto seen = graph_.observe_pending(*key, now, limits_);
  stats_.pending_evicted += seen.evicted;
  return seen.inserted ? Outcome::pending_new : Outcome::pending_repeat;
}

double Learner::new_edge_rate(TimePoint now, std::chrono::seconds window) const {
  auto from = now - window;
  auto n = std::count_if(recent_new_.begin(), recent_new_.end(), [&](auto t) { return t >= from; });
  return static_cast<double>(n) * 60.0 / static_cast<double>(window.count());
}

}  // namespace topowall::topology
