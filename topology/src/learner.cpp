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

bool Learner::learning(const EdgeKey& k) const {
  return modes_.effective(k.src, endpoints_.is_workload(k.src), k.dst, endpoints_.is_workload(k.dst)) == Mode::learn;
}

const std::string& Learner::owner(const EdgeKey& k) const {
  return endpoints_.is_workload(k.src) || !endpoints_.is_workload(k.dst) ? k.src : k.dst;
}

Outcome Learner::observe(const FlowTuple& flow, TimePoint now, bool resync) {
  ++stats_.flows;
  if (flow.phase == FlowPhase::progress) return Outcome::ignored;
  auto key = edge_for(flow, endpoints_);
  if (!key) {
    ++stats_.not_ours;
    return Outcome::not_ours;
  }
  const auto e = graph_.find(*key);
  if (e && e->state == EdgeState::denied) return Outcome::denied;
  if (flow.phase != FlowPhase::answered) return not_answered(*key, flow, e.has_value(), now, resync);
  if (e) {
    if (!resync) graph_.observe(*key, now);
    return Outcome::known_edge;
  }
  if (learning(*key)) {
    if (!resync) note_new_key(*key, now);
    return learn_new(*key, now);
  }
  ++stats_.pending;
  auto seen = graph_.observe_pending(*key, now, limits_);
  stats_.pending_evicted += seen.evicted;
  return seen.inserted ? Outcome::pending_new : Outcome::pending_repeat;
}

// An attempt, a refusal, an end without answer: counted, never learned, except a UDP flow that keeps
// coming back unanswered (a one-way protocol).
Outcome Learner::not_answered(const EdgeKey& key, const FlowTuple& flow, bool known, TimePoint now, bool resync) {
  if (resync) return Outcome::unanswered;  // a dumped entry still waiting teaches nothing
  if (flow.phase == FlowPhase::refused || flow.phase == FlowPhase::unanswered) {
    auto& a = attempts_[owner(key)];
    ++(flow.phase == FlowPhase::refused ? a.refused : a.unanswered);
    ++(flow.phase == FlowPhase::refused ? stats_.refused : stats_.unanswered);
  }
  if (known) {
    // A known one-way sender: its unanswered ends are its sightings (an answered flow counts its answer).
    if (key.proto == Proto::udp && flow.phase == FlowPhase::unanswered) {
      graph_.observe(key, now);
      return Outcome::known_edge;
    }
    return Outcome::unanswered;
  }
  if (!learning(key)) return Outcome::unanswered;
  note_new_key(key, now);  // a scan of closed ports quarantines its source before an open one answers
  if (key.proto == Proto::udp && flow.phase != FlowPhase::refused && one_way_.note(key, now, cfg_)) {
    ++stats_.one_way_learned;
    return learn_new(key, now);
  }
  return Outcome::unanswered;
}

void Learner::note_new_key(const EdgeKey& key, TimePoint now) {
  // Only what a workload itself tries counts: a scan from outside must not keep it from converging.
  if (!endpoints_.is_workload(key.src)) return;
  attempts_[key.src].last_attempt = now;
  if (!fanout_.note(key, now, cfg_).tripped) return;
  ++stats_.quarantines;
  ++attempts_[key.src].quarantines;
  on_quarantine_(key.src, fanout_.reason_of(key.src).value_or("fan-out"), key);
}

std::optional<std::string> Learner::hold_reason(const EdgeKey& key, TimePoint now) {
  // Held once, held until an operator decides: a lifted quarantine does not launder what the scan found.
  if (auto it = graph_.pending().find(key); it != graph_.pending().end() && !it->second.reason.empty())
    return it->second.reason;
  if (cfg_.world_pending && key.src == kWorld && endpoints_.is_workload(key.dst)) return std::string("world");
  if (endpoints_.is_workload(key.src)) return fanout_.quarantined(key.src, now, cfg_);
  return std::nullopt;
}

Outcome Learner::learn_new(const EdgeKey& key, TimePoint now) {
  if (auto reason = hold_reason(key, now)) {
    auto seen = graph_.observe_pending(key, now, limits_, 1, *reason);
    stats_.pending_evicted += seen.evicted;
    if (!seen.inserted) return Outcome::pending_repeat;
    // Held edges are counted, not their repeats: every client of a public server repeats world -> it.
    ++stats_.held;
    ++attempts_[owner(key)].held;
    return Outcome::held_new;
  }
  graph_.observe(key, now);
  ++stats_.new_edges;
  recent_new_.push_back(now);
  while (recent_new_.size() > 10000) recent_new_.pop_front();
  return Outcome::new_edge;
}

double Learner::new_edge_rate(TimePoint now, std::chrono::seconds window) const {
  auto from = now - window;
  auto n = std::count_if(recent_new_.begin(), recent_new_.end(), [&](auto t) { return t >= from; });
  return static_cast<double>(n) * 60.0 / static_cast<double>(window.count());
}

}  // namespace topowall::topology
