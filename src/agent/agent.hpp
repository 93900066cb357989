// topowalld: discovery + learning + state + control, wired on one event loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "agent/alert_pipeline.hpp"
#include "agent/control_api.hpp"
#include "agent/graph_transfer.hpp"
#include "agent/endpoint_registry.hpp"
#include "agent/edge_use.hpp"
#include "agent/flow_history.hpp"
#include "agent/flow_intake.hpp"
#include "agent/policy_service.hpp"
#include "agent/programmer.hpp"
#include "alerts/sinks.hpp"
#include "common/heap.hpp"
#include "control/server.hpp"
#include "topowall/alert_source.hpp"
#include "topowall/ruleset_writer.hpp"
#include "topowall/topology/alerts.hpp"
#include "topowall/topology/ruleset.hpp"
#include "store/state_store.hpp"
#include "topowall/address_watcher.hpp"
#include "topowall/cluster.hpp"
#include "topowall/flow_source.hpp"
#include "topowall/runtime.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/identity.hpp"
#include "topowall/topology/coverage.hpp"
#include "topowall/topology/learner.hpp"
#include "topowall/topology/rate_limit.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::agent {

struct AgentConfig {
  std::string socket_path;           // "" = no control socket (tests)
  std::string control_group;
  std::optional<Mode> initial_mode;  // only for a fresh state directory
  std::optional<std::chrono::seconds> learn_for;
  Mode after_learn = Mode::monitor;
  topology::IdentityConfig identity;
  std::vector<topology::NamedNetwork> external;
  // Flows with an end not yet known wait this long for discovery to catch up.
  std::chrono::milliseconds settle{500};
  topology::RulesetConfig ruleset;
  // A workload first seen while the node monitors or enforces learns on its
  // own for this long; zero enforces it at once.
  std::chrono::seconds new_workload_learn_for{0};
  // Promote a learning workload to enforce after this long without a new edge (0 = never).
  std::chrono::seconds auto_promote_after{0};
  // A workload id unused (no address on the node or the cluster) this long goes back to the pool: the
  // mark bits hold few ids (--mark-mask).
  std::chrono::seconds id_reuse_after{600};
  std::chrono::seconds alert_window{10};
  // Pending flows kept per source workload and in all; beyond, the least recently seen are evicted, so a
  // port scan cannot grow the table or the state file.
  topology::PendingLimits pending_limits;
  // What learning trusts: answered flows, one-way repeats, the fan-out quarantine, world ingress held.
  topology::LearnConfig learn;
  // A learning workload is converged once this long passes without a new edge (status, workloads).
  std::chrono::seconds converge_after{600};
  // The largest graph topology.import and topology.diff read from a passed descriptor (--max-import-bytes).
  std::size_t max_import_bytes = 64 << 20;
  // Alerts reaching the sinks, per source workload (a token bucket), so one scanner cannot drown the
  // others' alerts; the same bucket spaces the log's "flow outside the graph" lines.
  topology::Rate alert_rate;
  // Bridged container traffic reaches the inet hooks only with br_netfilter's bridge-nf-call-iptables
  // and -ip6tables on. Off: status, /healthz (503) and a metric say enforcement is not claimed.
  std::string bridge_sysctl_dir = "/proc/sys/net/bridge";
  bool set_bridge_netfilter = false;  // turn them on at start (and whenever found off)
  // The flow journal for `topowall replay` ("" = none; topowalld puts it in the state directory).
  std::string journal_path;
  std::uint64_t journal_max_bytes = 64 << 20;  // --journal-max-bytes
  // The generation check behind the nftables change monitor (lost notices); tests shorten it to see
  // that another program's change still costs no reconcile.
  std::chrono::milliseconds ruleset_check{10000};
  // How often the allowed edges' kernel counters are read for the use of edges that do not learn (their
  // connections send no conntrack events): `last_used` and the journal lag by up to this much.
  std::chrono::milliseconds edge_use_every{30000};
  // Changes that arrive within this much of a conntrack sweep wait for it and share the next one
  // (RulesetProgrammer::set_sweep_spacing): 200 remote changes a second cost 400 table walks otherwise.
  std::chrono::milliseconds sweep_spacing{20};
};

struct Adapters {
  std::unique_ptr<Discovery> runtime;            // may be null
  std::unique_ptr<Discovery> netns;              // may be null
  std::unique_ptr<FlowSource> flows;             // may be null
  std::unique_ptr<store::StateStore> store;
  std::unique_ptr<AddressWatcher> addresses;     // may be null: runtime addresses only
  std::unique_ptr<RulesetWriter> writer;         // may be null: learn-only, no kernel rules
  std::unique_ptr<AlertSource> alerts;           // may be null
  std::unique_ptr<ClusterStore> cluster;         // may be null: single-node
  std::unique_ptr<TimeSource> time;              // null: the real clock (tests inject simulated time)
  std::unique_ptr<RulesetWatch> ruleset_watch;   // may be null: changes by others found by the periodic check only
  std::vector<std::unique_ptr<alerts::Sink>> sinks;
  // Deletes conntrack entries a predicate dooms; null in tests without a kernel.
  ConntrackDelete conntrack_delete;
};

struct AgentCounters {
  std::uint64_t persist_errors = 0;
  std::uint64_t state_save_ms = 0;     // the last save's duration, which spaces the periodic ones
  std::uint64_t heap_trims = 0;        // freed heap returned to the system (common/heap.hpp)
  std::uint64_t heap_trim_ms = 0;      // the last trim's duration (it holds the loop)
  std::uint64_t handler_errors = 0;
  std::uint64_t pending_evicted = 0;   // by logged packets and at load (the learner counts its own)
  bool bridge_netfilter = true;        // bridged traffic reaches our hooks
};

class Agent {
 public:
  Agent(boost::asio::io_context& io, AgentConfig cfg, Adapters adapters);
  ~Agent();

  // Ordered start-up: state, control socket, host addresses, discovery, flows.
  Status start();
  void stop();

  // The control API (also called directly by tests).
  nlohmann::json handle(const nlohmann::json& req, const control::Peer& peer, const control::PushFn& push);

  // The radar's model (topology::radar_model): the graph, live endpoints, modes and recent alerts.
  nlohmann::json radar_json() const;

  // Inspection for tests.
  const topology::State& state() const { return state_; }
  const topology::EndpointTable& endpoints() const { return endpoints_; }
  const AgentCounters& counters() const { return counters_; }
  bool discovery_synced() const;
  void flush_deferred();  // process every held flow now
  Status persist();
  // Compile and program the ruleset now (normally coalesced per loop turn).
  void apply_now() { programmer_.apply_now(); }
  const std::optional<topology::RulesetModel>& applied_model() const { return programmer_.applied(); }

 private:
  void follow_learning();  // conntrack events subscribed only while the applied model can need them
  void on_cluster(const ClusterEvent& ev);
  // The steps of start(), in order.
  [[nodiscard]] Status start_state();
  [[nodiscard]] Status start_control();
  [[nodiscard]] Status start_discovery();
  [[nodiscard]] Status start_flows();
  [[nodiscard]] Status start_rules();
  void tick();
  void check_bridge_netfilter();
  void release_heap();  // freed heap back to the system after a peak (common/heap.hpp)
  void note_pending(const topology::EdgeKey& key, TimePoint when);
  void log_pending(const topology::EdgeKey& key);
  bool read_edge_use();

  nlohmann::json status_json() const;
  nlohmann::json counters_json() const;
  nlohmann::json core_counters() const;                       // the agent's own classes
  void add_discovery_counters(nlohmann::json& counters) const;  // conntrack, discovery, control socket
  void add_ruleset_counters(nlohmann::json& counters) const;    // journal, programmer, alerts, writer, NFLOG
  nlohmann::json workloads_json() const;
  void register_methods();
  void wire_registry();
  void wire_intake();
  nlohmann::json committed(nlohmann::json result);
  nlohmann::json committed(Reply r) { return r.error ? std::move(r.body) : committed(std::move(r.body)); }
  nlohmann::json rules_show();
  nlohmann::json coverage_json(TimePoint now, bool full) const;
  nlohmann::json export_topology(const nlohmann::json& params, int passed_fd);

  boost::asio::io_context& io_;
  AgentConfig cfg_;
  Adapters ad_;
  topology::State state_;
  topology::EndpointTable endpoints_;
  std::unique_ptr<TimeSource> time_;
  topology::Learner learner_;
  FlowIntake intake_;
  std::unique_ptr<control::Server> server_;
  EndpointRegistry registry_;
  RulesetProgrammer programmer_;
  PolicyConfig policy_cfg_;
  PolicyService policy_;
  HistoryConfig history_cfg_;
  FlowHistory history_;
  EdgeUse edge_use_;
  boost::asio::steady_timer ticker_;
  AlertPipeline alerts_;
  ControlApi api_;
  ExportStreams exports_{io_};

  bool dirty_ = false;
  topology::KeyedRateLimiter pending_log_limiter_;
  std::chrono::steady_clock::time_point last_save_{};
  std::chrono::steady_clock::duration save_every_ = std::chrono::seconds(1);
  std::chrono::steady_clock::time_point last_slow_tick_{};
  std::chrono::steady_clock::time_point last_heap_check_{};
  HeapReleaser heap_;
  std::chrono::steady_clock::time_point last_gen_check_{};
  std::chrono::steady_clock::time_point last_edge_use_{};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  AgentCounters counters_;
  topology::SignalsFn signals_;  // the learner's view of a workload, for coverage and auto-promotion
};

}  // namespace topowall::agent
