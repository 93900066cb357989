#include "agent/agent.hpp"

#include <algorithm>
#include <fstream>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "metrics/radar_page.hpp"
#include "topowall/topology/exporters.hpp"
#include "topowall/topology/graph_stream.hpp"

namespace topowall::agent {

using nlohmann::json;
using topology::kHost;
using topology::kWorld;

namespace {
constexpr auto kTick = std::chrono::milliseconds(100);
// How often the heap is checked for freed memory to return (a check is one mallinfo2, microseconds).
constexpr auto kHeapCheck = std::chrono::seconds(10);
}  // namespace

Agent::Agent(boost::asio::io_context& io, AgentConfig cfg, Adapters adapters)
    : io_(io),
      cfg_(std::move(cfg)),
      ad_(std::move(adapters)),
      time_(ad_.time ? std::move(ad_.time) : std::make_unique<RealTimeSource>()),
      learner_(state_.graph, endpoints_, state_.modes, cfg_.pending_limits, cfg_.learn),
      intake_(learner_, endpoints_, *time_, cfg_.settle),
      registry_(endpoints_, cfg_.identity, ad_.addresses.get(), ad_.cluster.get()),
      programmer_(io, cfg_.ruleset, ad_.writer.get(), ad_.conntrack_delete, state_, endpoints_),
      policy_cfg_{cfg_.after_learn, cfg_.new_workload_learn_for, cfg_.auto_promote_after, cfg_.max_import_bytes},
      policy_(policy_cfg_, state_, endpoints_, programmer_, *time_),
      history_cfg_{cfg_.journal_path, cfg_.journal_max_bytes, cfg_.max_import_bytes},
      history_(history_cfg_, state_, *time_),
      ticker_(io),
      alerts_(cfg_.alert_window, cfg_.alert_rate, std::move(ad_.sinks), endpoints_, state_.graph),
      pending_log_limiter_(cfg_.alert_rate) {
  endpoints_.set_external_networks(cfg_.external);
  // A workload named like an external network would share its id, and so its edges.
  for (const auto& n : cfg_.external) cfg_.identity.reserved.push_back(n.name);
  programmer_.set_ready([this] { return discovery_synced(); });
  wire_registry();
  wire_intake();
  programmer_.set_on_applied([this] {
    dirty_ = true;
    follow_learning();
  });
  programmer_.set_time(time_.get());
  programmer_.set_sweep_spacing(cfg_.sweep_spacing);
  alerts_.set_time(time_.get());
  policy_.set_cluster(ad_.cluster.get());
  policy_.set_on_dirty([this] { dirty_ = true; });
  register_methods();
  alerts_.set_on_blocked([this](const topology::EdgeKey& k, TimePoint when) {
    history_.on_blocked(k, when);
    note_pending(k, when);
  });
  signals_ = [this](const std::string& w) {
    topology::LearningSignals sig;
    if (learner_.quarantined(w, time_->now())) sig.quarantine = learner_.quarantine_of(w);
    if (auto it = learner_.attempts().find(w); it != learner_.attempts().end()) sig.last_attempt = it->second.last_attempt;
    return sig;
  };
  policy_.set_signals(signals_);
  learner_.set_on_quarantine([this](const std::string& w, const std::string& reason, const topology::EdgeKey& k) {
    alerts_.on_quarantine(w, reason, k, time_->now());
  });
  history_.set_refresh([this] {
    if (ad_.flows)
      if (auto st = ad_.flows->resync(); !st) spdlog::warn("conntrack dump for edge use failed: {}", st.error().message);
    flush_deferred();
    read_edge_use();
  });
  history_.set_remove([this](const topology::EdgeKey& k) {
    return policy_.remove_edge({{"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)}, {"port", k.port}});
  });
}

Agent::~Agent() {
  try {
    stop();
  } catch (const std::exception& e) {  // a destructor must not throw; the kernel keeps enforcing regardless
    spdlog::error("stopping the agent: {}; the last state change may not be saved", e.what());
  }
}

// Start-up as ordered steps (Falco's model): each step needs the ones before it, and the first that
// fails stops start-up with what was wrong.
Status Agent::start() {
  for (auto step : {&Agent::start_state, &Agent::start_control, &Agent::start_discovery, &Agent::start_flows,
                    &Agent::start_rules})
    if (auto st = (this->*step)(); !st) return st;
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
  return ok_status();
}

// 1. State: reload the graph and mode; a fresh directory takes --mode.
Status Agent::start_state() {
  auto loaded = ad_.store->load();
  if (!loaded) return loaded.error();
  if (*loaded) {
    auto s = topology::state_from_json(**loaded);
    if (!s) return Error{"state file is invalid: " + s.error().message + "; fix it or move it aside"};
    state_ = std::move(*s);
    spdlog::info("state loaded: mode {}, {} edges, {} pending", to_string(state_.modes.global),
                 state_.graph.edges().size(), state_.graph.pending().size());
  } else {
    state_.modes.global = cfg_.initial_mode.value_or(Mode::learn);
    dirty_ = true;
    spdlog::info("fresh state: mode {}", to_string(state_.modes.global));
  }
  if (auto n = state_.graph.bound_pending(cfg_.pending_limits)) {  // saved under larger limits, or none
    counters_.pending_evicted += n;
    spdlog::warn("{} pending flows beyond the limits evicted (least recently seen first)", n);
    dirty_ = true;
  }
  if (state_.modes.global == Mode::learn && cfg_.learn_for && !state_.learn_until) {
    state_.learn_until = time_->now() + *cfg_.learn_for;
    dirty_ = true;
  }
  // Other nodes' endpoints as last known: enforced by name from the first ruleset, etcd or not.
  if (ad_.cluster) {
    registry_.restore(state_.remote_endpoints);
    state_.remote_endpoints = {};  // the registry holds them now, and persist() writes them from there
  }
  if (auto st = persist(); !st) return Error{"cannot write state: " + st.error().message};
  history_.open();  // the flow journal: a failure is logged and counted, never fatal
  return ok_status();
}

// 2. Control socket, so operators can ask while discovery runs.
Status Agent::start_control() {
  if (cfg_.socket_path.empty()) return ok_status();
  control::ServerOptions so;
  so.path = cfg_.socket_path;
  so.group = cfg_.control_group;
  server_ = std::make_unique<control::Server>(
      io_, so, [this](const json& r, const control::Peer& p, const control::PushFn& push) { return handle(r, p, push); });
  return server_->start();
}

// 3. The node's own addresses are `host`; 4. discovery: runtime API and/or named namespaces, and the
// other nodes' endpoints, so cross-node peers are named, not `world` (a healthy etcd answers in
// milliseconds, well within the hold for flows whose ends are not yet known).
Status Agent::start_discovery() {
  if (ad_.addresses)
    ad_.addresses->watch("host", "", [this](const AddressSnapshot& s) {
      if (s.addrs == endpoints_.host_addresses()) return;
      endpoints_.set_host_addresses(s.addrs);
      programmer_.request_full();
    });
  using Src = EndpointRegistry::Source;
  if (ad_.runtime) registry_.expect(Src::runtime);
  if (ad_.netns) registry_.expect(Src::netns);
  if (ad_.runtime) ad_.runtime->start([this](const DiscoveryEvent& e) { registry_.on_discovery(e, Src::runtime); });
  if (ad_.netns) ad_.netns->start([this](const DiscoveryEvent& e) { registry_.on_discovery(e, Src::netns); });
  if (ad_.cluster) ad_.cluster->start([this](const ClusterEvent& e) { on_cluster(e); });
  return ok_status();
}

// 5. Flows: subscribe, then replay what conntrack already holds; 6. alerts from the ruleset's log.
Status Agent::start_flows() {
  if (ad_.flows) {
    if (auto st = ad_.flows->start([this](const FlowTuple& f, bool r) { intake_.on_flow(f, r); }); !st) return st;
    if (auto st = ad_.flows->resync(); !st) spdlog::warn("initial conntrack dump failed: {}", st.error().message);
  }
  if (ad_.alerts)
    if (auto st = ad_.alerts->start([this](const LoggedPacket& p) { alerts_.on_logged(p); }); !st)
      return Error{"alerts: " + st.error().message};
  return ok_status();
}

// 7. Rules: programmed once discovery has synced, never before, so a restarted agent never takes away
// what the kernel is still enforcing. Changes others make to our tables (deleted, flushed, edited) are
// restored as soon as their transaction is notified.
Status Agent::start_rules() {
  check_bridge_netfilter();
  if (ad_.ruleset_watch) {
    if (auto st = ad_.ruleset_watch->start([this](const std::string& why) { programmer_.repair(why); }); !st)
      return Error{"watching the ruleset: " + st.error().message};
    programmer_.set_watch(ad_.ruleset_watch.get());
  }
  programmer_.request_full();
  return ok_status();
}

void Agent::stop() {
  ticker_.cancel();
  programmer_.stop();
  if (ad_.alerts) ad_.alerts->stop();
  if (ad_.flows) ad_.flows->stop();
  if (ad_.runtime) ad_.runtime->stop();
  if (ad_.netns) ad_.netns->stop();
  if (ad_.cluster) ad_.cluster->stop();
  if (server_) server_->stop();
  history_.flush(true);
  if (dirty_) {
    flush_deferred();
    (void)persist();  // a failure is logged and counted there; nothing is left to retry it
  }
}

// Events only while something can need them (issue 16): decided on each model the kernel accepted. Until the
// first apply the source stays subscribed as it started, so an agent restarted while learning misses nothing.
void Agent::follow_learning() {
  const auto& applied = programmer_.applied();
  if (!ad_.flows || !applied) return;
  // After a patch only its addresses are judged (a scan of every endpoint per remote change would cost
  // O(endpoints) on the change path): it can start a need, not prove the last one gone, so a subscribed
  // source stays so until the next full apply (the safe way). A failure is logged once and counted by the
  // source, which stays subscribed; the next apply tries again.
  const auto& patched = programmer_.last_patched();
  if (patched && ad_.flows->stats().subscribed) return;
  (void)ad_.flows->set_subscribed(patched ? topology::needs_conntrack_events(*applied, *patched)
                                          : topology::needs_conntrack_events(*applied));
}

bool Agent::discovery_synced() const { return registry_.synced(); }

Status Agent::persist() {
  // In cluster mode the registry holds the remote endpoints: written from there, not copied into the state.
  auto st = ad_.store->save_text(ad_.cluster ? topology::state_to_text(state_, registry_.remote_endpoints())
                                             : topology::state_to_text(state_));
  if (!st) {
    ++counters_.persist_errors;
    spdlog::error("persisting state failed: {} (will retry)", st.error().message);
    return st;
  }
  dirty_ = false;
  return st;
}

// --- discovery ------------------------------------------------------------

void Agent::wire_registry() {
  RegistryHooks h;
  h.changed = [this](const std::vector<IpAddr>& addrs) {
    dirty_ = true;
    programmer_.touch(addrs);
  };
  h.workload_seen = [this](const std::string& w, const std::map<std::string, std::string>* labels) {
    const bool fresh = !state_.graph.workloads().count(w);
    if (fresh) policy_.on_new_workload(w);
    if (labels || fresh) state_.graph.note_workload(w, labels ? *labels : std::map<std::string, std::string>{}, time_->now());
  };
  h.before_remove = [this] { flush_deferred(); };
  h.resolvable = [this] { flush_deferred(); };
  h.synced = [this] { programmer_.request_full(); };
  h.event_seen = [this](std::chrono::steady_clock::time_point t) { programmer_.note_event(t); };
  registry_.set_hooks(std::move(h));
}

// --- cluster ----------------------------------------------------------------

void Agent::on_cluster(const ClusterEvent& ev) {
  if (ev.kind == ClusterEvent::Kind::decision) {
    try {
      policy_.apply_decision(ev.decision);
    } catch (const std::exception& e) {
      ++counters_.handler_errors;
      spdlog::error("cluster decision failed: {}", e.what());
    }
    return;
  }
  registry_.on_cluster(ev);
}

// --- flows ----------------------------------------------------------------

void Agent::wire_intake() {
  IntakeHooks h;
  h.changed = [this] { dirty_ = true; };
  h.pending = [this](const topology::EdgeKey& k) { log_pending(k); };
  h.seen = [this](const topology::EdgeKey& k, bool resync) { history_.on_flow(k, resync); };
  h.learned = [this](const topology::EdgeKey& k, const FlowTuple& flow) {
    programmer_.touch(k);  // programs just this edge
    if (alerts_.watched())
      alerts_.publish({{"event", "learned"}, {"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)},
                       {"port", k.port}, {"src_addr", flow.src.to_string()}, {"dst_addr", flow.dst.to_string()},
                       {"verdict", "allowed"}});
  };
  intake_.set_hooks(std::move(h));
}

void Agent::flush_deferred() { intake_.flush(); }

// The use of edges that do not learn, from the kernel's counters (agent/edge_use.hpp). False before the
// first apply: the first read, the starting point, comes right after it.
bool Agent::read_edge_use() {
  const auto& model = programmer_.applied();
  if (!ad_.writer || !model) return false;
  if (auto st = edge_use_.read(*ad_.writer, *model, state_.modes, endpoints_, history_); !st) {
    edge_use_.note_error();
    if (edge_use_.errors() == 1)
      spdlog::warn("edge use: reading the kernel's counters failed: {}; enforced edges' last use and journal lag until "
                   "a read succeeds (edge_use_errors counts them)", st.error().message);
  }
  return true;
}

// --- periodic work ----------------------------------------------------------

void Agent::tick() {
  try {
    auto now = std::chrono::steady_clock::now();
    intake_.release_due();
    // Scans over the whole graph run once a second, not every tick.
    if (now - last_slow_tick_ >= std::chrono::seconds(1)) {
      last_slow_tick_ = now;
      policy_.tick();
      check_bridge_netfilter();
      programmer_.collect_ids(time_->now(), cfg_.id_reuse_after);
    }
    if (now - last_heap_check_ >= kHeapCheck) {
      last_heap_check_ = now;
      release_heap();
    }
    alerts_.flush(time_->now());
    if (now - last_edge_use_ >= cfg_.edge_use_every && read_edge_use()) last_edge_use_ = now;
    history_.flush();  // the minutes that closed, to the journal
    // The backstop for lost change notices: a cheap generation check; a reconcile only if it moved.
    if (now - last_gen_check_ >= cfg_.ruleset_check) {
      last_gen_check_ = now;
      programmer_.check_generation();
    }
    if (dirty_ && now - last_save_ >= save_every_) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)persist();  // a failure is logged and counted there, and retried at the next save
      last_save_ = std::chrono::steady_clock::now();
      // Spaced by their own cost, so saves hold the loop at most 1 % of the time: a cluster's 100k remote
      // endpoints make a save take tens of milliseconds, and every change arriving meanwhile waits for it
      // (at 3 % of the time that was the p99 of remote changes, issue 16).
      const auto took = last_save_ - t0;
      save_every_ = std::clamp<std::chrono::steady_clock::duration>(100 * took, std::chrono::seconds(1),
                                                                   std::chrono::seconds(30));
      counters_.state_save_ms =
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count());
    }
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("periodic work failed: {}", e.what());
  }
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void Agent::release_heap() {
  const auto r = heap_.check();
  if (!r.trimmed) return;
  ++counters_.heap_trims;
  counters_.heap_trim_ms = r.ms;
  spdlog::info("memory: {} MiB of the heap were free after a peak; returned to the system in {} ms (RSS {} -> {} MiB)",
               r.free_bytes >> 20, r.ms, r.rss_before_kib >> 10, r.rss_after_kib >> 10);
}

// --- ruleset -----------------------------------------------------------------

void Agent::check_bridge_netfilter() {
  bool on = true;
  std::string off;
  for (const char* knob : {"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"}) {
    const auto path = cfg_.bridge_sysctl_dir + "/" + knob;
    std::ifstream in(path);
    char v = '0';
    if (!(in >> v) || v != '1') {
      if (cfg_.set_bridge_netfilter && in.is_open()) std::ofstream(path) << "1\n";
      std::ifstream again(path);
      if (!(again >> v) || v != '1') {
        on = false;
        off += (off.empty() ? "" : ", ") + path + (again.is_open() ? " is 0" : " is missing (br_netfilter not loaded)");
      }
    }
  }
  if (!on && counters_.bridge_netfilter)
    spdlog::error("bridged container traffic bypasses the firewall: {}. Load br_netfilter and set both to 1, or run "
                  "with --set-bridge-netfilter; until then /healthz answers 503", off);
  if (on && !counters_.bridge_netfilter) spdlog::info("bridge netfilter is on: bridged traffic is judged again");
  counters_.bridge_netfilter = on;
}

// --- alerts ------------------------------------------------------------------

void Agent::note_pending(const topology::EdgeKey& key, TimePoint when) {
  auto seen = state_.graph.observe_pending(key, when, cfg_.pending_limits);
  counters_.pending_evicted += seen.evicted;
  dirty_ = true;
  if (seen.inserted) log_pending(key);
}

// One line per new pending flow, spaced per source like alerts: a port scan must not flood the log either.
void Agent::log_pending(const topology::EdgeKey& key) {
  if (pending_log_limiter_.allow(key.src, time_->now())) spdlog::warn("flow outside the graph: {}", key.to_string());
  else spdlog::debug("flow outside the graph: {}", key.to_string());
}

}  // namespace topowall::agent
