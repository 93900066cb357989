#include "agent/flow_intake.hpp"

#include <spdlog/spdlog.h>

#include "topowall/topology/identity.hpp"

namespace topowall::agent {

FlowIntake::FlowIntake(topology::Learner& learner, const topology::EndpointTable& endpoints, const TimeSource& time,
                       std::chrono::milliseconds settle)
    : learner_(learner), endpoints_(endpoints), time_(time), settle_(settle) {}

void FlowIntake::on_flow(const FlowTuple& flow, bool resync) {
  try {
    const bool unknown =
        endpoints_.resolve(flow.src) == topology::kWorld || endpoints_.resolve(flow.dst) == topology::kWorld;
    if (!unknown || settle_.count() <= 0) return learn(flow, resync);
    ++counters_.deferred;
    if (held_.size() >= kMaxHeld) {
      ++counters_.overflow;
      auto h = held_.front();
      held_.pop_front();
      learn(h.flow, h.resync);
    }
    held_.push_back(Held{flow, resync, time_.monotonic() + settle_});
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("flow handling failed: {}", e.what());
  }
}

void FlowIntake::release_due() {
  const auto now = time_.monotonic();
  while (!held_.empty() && held_.front().until <= now) {
    auto h = held_.front();
    held_.pop_front();
    learn(h.flow, h.resync);
  }
}

void FlowIntake::flush() {
  while (!held_.empty()) {
    auto h = held_.front();
    held_.pop_front();
    learn(h.flow, h.resync);
  }
}

void FlowIntake::learn(const FlowTuple& flow, bool resync) {
  auto outcome = learner_.observe(flow, time_.now(), resync);
  using O = topology::Outcome;
  if (outcome == O::not_ours || outcome == O::unanswered || outcome == O::ignored) return;
  const auto k = *topology::edge_for(flow, endpoints_);
  hooks_.seen(k, resync);  // after the learner, so an edge it just learned is stamped used too
  if (outcome == O::denied) return;
  hooks_.changed();
  if (outcome != O::new_edge && outcome != O::pending_new && outcome != O::held_new) return;
  if (outcome != O::new_edge) return hooks_.pending(k);
  spdlog::info("learned {}", k.to_string());
  hooks_.learned(k, flow);
}

}  // namespace topowall::agent
