// Flow intake: conntrack's new flows into the learner. A flow with an end nobody owns yet may belong to
// a container whose discovery is milliseconds behind its first packet: it is held for `settle` (bounded),
// then learned with whatever is known.
#pragma once

#include <chrono>
#include <deque>
#include <functional>

#include "topowall/time_source.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/learner.hpp"

namespace topowall::agent {

struct IntakeCounters {
  std::uint64_t deferred = 0;
  std::uint64_t overflow = 0;  // held flows learned early because the queue was full
  std::uint64_t handler_errors = 0;
};

struct IntakeHooks {
  std::function<void(const topology::EdgeKey&, const FlowTuple&)> learned = [](const auto&, const auto&) {};
  std::function<void(const topology::EdgeKey&)> pending = [](const auto&) {};  // a new flow outside the graph
  std::function<void()> changed = [] {};                                      // the graph changed: save it
  // Every flow of an edge key (conntrack let it through), known edge or not, before the learner judges it:
  // the edge's use and the flow journal (agent/flow_history.hpp).
  std::function<void(const topology::EdgeKey&, bool resync)> seen = [](const auto&, bool) {};
};

class FlowIntake {
 public:
  static constexpr std::size_t kMaxHeld = 100000;

  FlowIntake(topology::Learner& learner, const topology::EndpointTable& endpoints, const TimeSource& time,
             std::chrono::milliseconds settle);
  void set_hooks(IntakeHooks h) { hooks_ = std::move(h); }

  void on_flow(const FlowTuple& flow, bool resync);  // never throws
  void release_due();                                // learn the held flows whose hold is over
  void flush();                                      // learn every held flow now
  std::size_t held() const { return held_.size(); }
  const IntakeCounters& counters() const { return counters_; }

 private:
  void learn(const FlowTuple& flow, bool resync);

  struct Held {
    FlowTuple flow;
    bool resync;
    std::chrono::steady_clock::time_point until;
  };
  topology::Learner& learner_;
  const topology::EndpointTable& endpoints_;
  const TimeSource& time_;
  std::chrono::milliseconds settle_;
  IntakeHooks hooks_;
  std::deque<Held> held_;
  IntakeCounters counters_;
};

}  // namespace topowall::agent
