#include "topowall/topology/learn_guard.hpp"

namespace topowall::topology {

void FanOutGuard::age(Window& w, TimePoint now, const LearnConfig& cfg) {
  while (!w.recent.empty() && now - w.recent.front().first >= cfg.fanout_window) {
    w.keys.erase(w.recent.front().second);
    w.recent.pop_front();
  }
  // The quarantine lifts once a whole window passes within the limit.
  if (w.since && w.recent.size() <= cfg.fanout_limit) {
    w.since.reset();
    w.reason.clear();
  }
}

FanOutGuard::Noted FanOutGuard::note(const EdgeKey& key, TimePoint now, const LearnConfig& cfg) {
  Noted n;
  if (cfg.fanout_limit == 0) return n;
  auto& w = by_src_[key.src];
  age(w, now, cfg);
  if (!w.keys.insert(key).second) return n;
  w.recent.emplace_back(now, key);
  // Only the newest limit+1 keys matter to the verdict: the window stays bounded under a scan.
  while (w.recent.size() > cfg.fanout_limit + 1) {
    w.keys.erase(w.recent.front().second);
    w.recent.pop_front();
  }
  if (w.recent.size() > cfg.fanout_limit && !w.since) {
    // Many ports on few peers is a port scan; many peers is a fan-out (a subnet sweep, a worm).
    std::set<std::string> peers;
    std::set<std::uint16_t> ports;
    for (const auto& [t, k] : w.recent) {
      peers.insert(k.dst);
      ports.insert(k.port);
    }
    w.since = now;
    w.reason = ports.size() > peers.size() ? "scan" : "fan-out";
    n.tripped = true;
  }
  return n;
}

std::optional<std::string> FanOutGuard::quarantined(const std::string& workload, TimePoint now,
                                                    const LearnConfig& cfg) {
  auto it = by_src_.find(workload);
  if (it == by_src_.end()) return std::nullopt;
  age(it->second, now, cfg);
  if (!it->second.since) {
    if (it->second.recent.empty()) by_src_.erase(it);
    return std::nullopt;
  }
  return it->second.reason;
}

std::optional<std::string> FanOutGuard::reason_of(const std::string& workload) const {
  auto it = by_src_.find(workload);
  if (it == by_src_.end() || !it->second.since) return std::nullopt;
  return it->second.reason;
}

std::optional<TimePoint> FanOutGuard::since(const std::string& workload) const {
  auto it = by_src_.find(workload);
  return it == by_src_.end() ? std::nullopt : it->second.since;
}

bool OneWayTracker::note(const EdgeKey& key, TimePoint now, const LearnConfig& cfg) {
  if (cfg.one_way_after.count() <= 0 || cfg.one_way_events == 0) return false;
  auto it = flows_.find(key);
  // A flow silent for two periods starts over: the repeats must be recent.
  if (it != flows_.end() && now - it->second.last >= 2 * cfg.one_way_after) {
    flows_.erase(it);
    it = flows_.end();
  }
  if (it == flows_.end()) {
    // Full (a UDP sweep): one tracked flow makes room, in O(log n); a sweep's flows never repeat anyway.
    if (flows_.size() >= kMaxTracked) flows_.erase(flows_.begin());
    flows_[key] = Seen{now, now, 1};
    return false;  // one sighting spans no time
  }
  auto& s = it->second;
  // Events closer than one step count once: a burst is one sighting, not a repetition.
  const auto step = cfg.one_way_after / cfg.one_way_events;
  if (now - s.last >= step) {
    ++s.events;
    s.last = now;
  }
  if (s.events >= cfg.one_way_events && now - s.first >= cfg.one_way_after) {
    flows_.erase(it);
    return true;
  }
  return false;
}

}  // namespace topowall::topology
