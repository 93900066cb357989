// The policy service: every change to what is allowed goes through here. Typed commands (a decision
// on pending flows, an edge removed, a mode, an imported graph, a cluster decision) and the clocked
// rules (learning windows, auto-promotion, approval expiry) change the state, then ask the programmer
// for the kernel to follow. Time comes from the injected TimeSource, so windows and expiry are tested
// in simulated time.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent/programmer.hpp"
#include "topowall/cluster.hpp"
#include "topowall/time_source.hpp"
#include "topowall/topology/coverage.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::agent {

struct PolicyConfig {
  Mode after_learn = Mode::monitor;               // the node's mode once its learning window ends
  std::chrono::seconds new_workload_learn_for{0};  // a new workload learns on its own this long (0: never)
  std::chrono::seconds auto_promote_after{0};      // learning converged for this long: enforce (0: never)
  std::uint64_t max_import_bytes = 64ull << 20;    // a graph file passed as a descriptor, at most
};

// A control answer: the result to save and send, or an error response to send as it is.
struct Reply {
  nlohmann::json body;
  bool error = false;
  static Reply fail(const std::string& code, const std::string& message);
};

class PolicyService {
 public:
  PolicyService(const PolicyConfig& cfg, topology::State& state, const topology::EndpointTable& endpoints,
                RulesetProgrammer& programmer, const TimeSource& time);

  void set_cluster(ClusterStore* cluster) { cluster_ = cluster; }
  void set_on_dirty(std::function<void()> f) { on_dirty_ = std::move(f); }
  // The learner's view of a workload (attempts, quarantine): convergence needs it besides the graph.
  void set_signals(topology::SignalsFn f) { signals_ = std::move(f); }

  // Operator commands (control API parameters; each answers what it did).
  [[nodiscard]] Reply decide_flows(const nlohmann::json& params, topology::EdgeState state);
  [[nodiscard]] Reply remove_edge(const nlohmann::json& params);
  [[nodiscard]] Reply set_mode(const nlohmann::json& params);  // body: null (the caller answers the status)
  // Import and diff take the graph inline (`graph`) or from the file passed as a descriptor (`"fd": true`).
  [[nodiscard]] Reply import_graph(const nlohmann::json& params, int passed_fd);
  nlohmann::json explain(const nlohmann::json& params) const;     // a response, ok or error
  nlohmann::json diff_graph(const nlohmann::json& params, int passed_fd) const;  // a response, ok or error

  // An operator's decision made on another node: the same change as if made here.
  void apply_decision(const ClusterDecision& d);
  void set_global_mode(Mode m, std::optional<std::chrono::seconds> learn_for);
  // A workload seen for the first time.
  void on_new_workload(const std::string& name);
  // The clocked rules, at time_.now(): global and per-workload windows, auto-promotion, expiry.
  void tick();

 private:
  topology::EdgeInfo decide(const topology::EdgeKey& k, topology::EdgeState state, const std::string& comment,
                            std::optional<TimePoint> expires, TimePoint now);
  std::optional<topology::Graph> graph_param(const nlohmann::json& params, int passed_fd, Reply& refusal) const;
  void share_decision(const topology::EdgeKey& k, const std::string& state, const topology::EdgeInfo* e,
                      nlohmann::json& answer);
  void check_learn_window(TimePoint now);
  void check_workload_windows(TimePoint now);
  void auto_promote(TimePoint now);
  void expire_approvals(TimePoint now);
  void dirty() {
    if (on_dirty_) on_dirty_();
  }

  const PolicyConfig& cfg_;
  topology::State& state_;
  const topology::EndpointTable& endpoints_;
  RulesetProgrammer& programmer_;
  const TimeSource& time_;
  ClusterStore* cluster_ = nullptr;
  std::function<void()> on_dirty_;
  topology::SignalsFn signals_;
};

}  // namespace topowall::agent
