// What keeps learning honest (pure, time passed in): a workload that reaches too many new edges in a
// window is quarantined (a scan or a fan-out), and a one-way UDP flow is trusted only once it repeats.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

struct LearnConfig {
  // A UDP flow never answered (syslog, statsd) is learned once seen in `one_way_events` events at least
  // one_way_after / one_way_events apart, spanning one_way_after. 0: a one-way flow is never learned.
  std::chrono::seconds one_way_after{60};
  std::uint32_t one_way_events = 3;
  // A workload reaching more than `fanout_limit` new edges (distinct destination and port) within
  // `fanout_window` is quarantined: its further new edges wait for review. 0: no quarantine.
  std::uint32_t fanout_limit = 20;
  std::chrono::seconds fanout_window{60};
  // New edges from world into a workload wait for review instead of being learned.
  bool world_pending = true;
};

// Per source workload: the distinct new edges it tried within the window.
class FanOutGuard {
 public:
  struct Noted {
    bool tripped = false;  // this edge put the workload in quarantine
  };
  // Record an attempt at a new edge; a key already in the window counts once.
  Noted note(const EdgeKey& key, TimePoint now, const LearnConfig& cfg);
  // The quarantine reason ("scan", "fan-out") while the workload is quarantined, at `now`.
  std::optional<std::string> quarantined(const std::string& workload, TimePoint now, const LearnConfig& cfg);
  std::optional<std::string> reason_of(const std::string& workload) const;  // without ageing the window
  std::optional<TimePoint> since(const std::string& workload) const;

 private:
  struct Window {
    std::deque<std::pair<TimePoint, EdgeKey>> recent;
    std::set<EdgeKey> keys;
    std::optional<TimePoint> since;
    std::string reason;
  };
  void age(Window& w, TimePoint now, const LearnConfig& cfg);
  std::map<std::string, Window> by_src_;
};

// Unanswered UDP flows by edge, until they repeat enough to be a one-way protocol.
class OneWayTracker {
 public:
  static constexpr std::size_t kMaxTracked = 10000;  // a UDP scan must not grow it without end
  // Record an event of the flow; true once it has repeated enough to be learned.
  bool note(const EdgeKey& key, TimePoint now, const LearnConfig& cfg);
  std::size_t size() const { return flows_.size(); }

 private:
  struct Seen {
    TimePoint first, last;
    std::uint32_t events = 0;
  };
  std::map<EdgeKey, Seen> flows_;
};

}  // namespace topowall::topology
