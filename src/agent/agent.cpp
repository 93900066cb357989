#include "agent/agent.hpp"


#include <algorithm>
#include <fstream>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "topowall/topology/exporters.hpp"

namespace topowall::agent {

using nlohmann::json;
using topology::kHost;
using topology::kWorld;

namespace {
constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kGenerationCheck = std::chrono::seconds(10);


// Non-negative integer, whether it arrived signed or unsigned.
std::optional<std::uint64_t> as_uint(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  return std::nullopt;
}
std::optional<std::uint64_t> uint_param(const json& params, const char* key) {
  auto it = params.find(key);
  return it == params.end() ? std::nullopt : as_uint(*it);
}


}  // namespace

Agent::Agent(boost::asio::io_context& io, AgentConfig cfg, Adapters adapters)
    : io_(io),
      cfg_(std::move(cfg)),
      ad_(std::move(adapters)),
      learner_(state_.graph, endpoints_, state_.modes, cfg_.pending_limits),
      intake_(learner_, endpoints_, time_, cfg_.settle),
      registry_(endpoints_, cfg_.identity, ad_.addresses.get(), ad_.cluster.get()),
      programmer_(io, cfg_.ruleset, ad_.writer.get(), ad_.conntrack_delete, state_, endpoints_),
      ticker_(io),
      alerts_(cfg_.alert_window, cfg_.alert_rate, std::move(ad_.sinks), endpoints_, state_.graph),
      pending_log_limiter_(cfg_.alert_rate) {
  endpoints_.set_external_networks(cfg_.external);
  // A workload named like an external network would share its id, and so its edges.
  for (const auto& n : cfg_.external) cfg_.identity.reserved.push_back(n.name);
  programmer_.set_ready([this] { return discovery_synced(); });
  wire_registry();
  wire_intake();
  programmer_.set_on_applied([this] { dirty_ = true; });
  register_methods();
  alerts_.set_on_blocked([this](const topology::EdgeKey& k, TimePoint when) { note_pending(k, when); });
}

Agent::~Agent() {
  try {
    stop();
  } catch (const std::exception& e) {  // a destructor must not throw; the kernel keeps enforcing regardless
    spdlog::error("stopping the agent: {}; the last state change may not be saved", e.what());
  }
}

Status Agent::start() {
  // 1. State: reload the graph and mode; a fresh directory takes --mode.
  auto loaded = ad_.store->load();
  if (!loaded) return loaded.error();
  auto now = Clock::now();
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
    state_.learn_until = now + *cfg_.learn_for;
    dirty_ = true;
  }
  if (auto st = persist(); !st) return Error{"cannot write state: " + st.error().message};

  // 2. Control socket, so operators can ask while discovery runs.
  if (!cfg_.socket_path.empty()) {
    control::ServerOptions so;
    so.path = cfg_.socket_path;
    so.group = cfg_.control_group;
    server_ = std::make_unique<control::Server>(
        io_, so, [this](const json& r, const control::Peer& p, const control::PushFn& push) { return handle(r, p, push); });
    if (auto st = server_->start(); !st) return st;
  }

  // 3. The node's own addresses are `host`.
  if (ad_.addresses)
    ad_.addresses->watch("host", "", [this](const AddressSnapshot& s) {
      if (s.addrs == endpoints_.host_addresses()) return;
      endpoints_.set_host_addresses(s.addrs);
      programmer_.request_full();
    });

  // 4. Discovery: runtime API and/or named namespaces.
  using Src = EndpointRegistry::Source;
  if (ad_.runtime) registry_.expect(Src::runtime);
  if (ad_.netns) registry_.expect(Src::netns);
  if (ad_.runtime) ad_.runtime->start([this](const DiscoveryEvent& e) { registry_.on_discovery(e, Src::runtime); });
  if (ad_.netns) ad_.netns->start([this](const DiscoveryEvent& e) { registry_.on_discovery(e, Src::netns); });
  // Other nodes' endpoints, so cross-node peers are named, not `world` (a healthy etcd answers in
  // milliseconds, well within the hold for flows whose ends are not yet known).
  if (ad_.cluster) ad_.cluster->start([this](const ClusterEvent& e) { on_cluster(e); });

  // 5. Flows: subscribe, then replay what conntrack already holds.
  if (ad_.flows) {
    if (auto st = ad_.flows->start([this](const FlowTuple& f, bool r) { intake_.on_flow(f, r); }); !st) return st;
    if (auto st = ad_.flows->resync(); !st) spdlog::warn("initial conntrack dump failed: {}", st.error().message);
  }

  // 6. Alerts from the ruleset's log.
  if (ad_.alerts)
    if (auto st = ad_.alerts->start([this](const LoggedPacket& p) { alerts_.on_logged(p); }); !st)
      return Error{"alerts: " + st.error().message};

  // 7. Rules: programmed once discovery has synced, never before, so a
  // restarted agent never takes away what the kernel is still enforcing. Changes others make to our
  // tables (deleted, flushed, edited) are restored as soon as their transaction is notified.
  check_bridge_netfilter();
  if (ad_.ruleset_watch)
    if (auto st = ad_.ruleset_watch->start([this](const std::string& why) { programmer_.repair(why); }); !st)
      return Error{"watching the ruleset: " + st.error().message};
  programmer_.request_full();

  ticker_.expires_after(kTick);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
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
  if (dirty_) {
    flush_deferred();
    (void)persist();  // a failure is logged and counted there; nothing is left to retry it
  }
}

bool Agent::discovery_synced() const { return registry_.synced(); }

Status Agent::persist() {
  auto st = ad_.store->save(topology::state_to_json(state_));
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
    if (fresh) on_new_workload(w, Clock::now());
    if (labels || fresh) state_.graph.note_workload(w, labels ? *labels : std::map<std::string, std::string>{}, Clock::now());
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
      apply_decision(ev.decision);
    } catch (const std::exception& e) {
      ++counters_.handler_errors;
      spdlog::error("cluster decision failed: {}", e.what());
    }
    return;
  }
  registry_.on_cluster(ev);
}

// An operator's decision made on another node: the same change as if made here.
void Agent::apply_decision(const ClusterDecision& d) {
  const topology::EdgeKey k{d.src, d.dst, d.proto, d.port};
  auto& g = state_.graph;
  if (d.state == "removed") {
    if (!g.erase(k)) return;
  } else {
    const auto state = d.state == "approved" ? topology::EdgeState::approved : topology::EdgeState::denied;
    const auto expires =
        state == topology::EdgeState::approved && !d.until.empty() ? topology::parse_time(d.until) : std::nullopt;
    // Replayed on every reconnect: what already stands costs nothing.
    if (const auto* cur = g.find(k);
        cur && cur->state == state && cur->comment == d.comment && cur->expires == expires && !g.pending().count(k))
      return;
    auto& e = g.edges()[k];
    if (auto p = g.take_pending(k)) {
      e.count += p->count;
      e.first_seen = p->first_seen;
    }
    if (e.first_seen == TimePoint{}) e.first_seen = Clock::now();
    e.last_seen = std::max(e.last_seen, Clock::now());
    e.state = state;
    e.comment = d.comment;
    e.expires = expires;
  }
  spdlog::info("edge {} {} on node {}", k.to_string(), d.state, d.node);
  dirty_ = true;
  programmer_.touch(k);  // programmed within this loop turn, a replay's decisions in one transaction; a removal also
             // cuts the connections it allowed
}

void Agent::share_decision(const topology::EdgeKey& k, const std::string& state, const topology::EdgeInfo* e) {
  if (!ad_.cluster) return;
  ClusterDecision d{k.src, k.dst, k.proto, k.port, state, "", "", ""};
  if (e) {
    d.comment = e->comment;
    if (e->expires) d.until = topology::format_time(*e->expires);
  }
  ad_.cluster->decide(d);
}

// --- flows ----------------------------------------------------------------

void Agent::wire_intake() {
  IntakeHooks h;
  h.changed = [this] { dirty_ = true; };
  h.pending = [this](const topology::EdgeKey& k) { log_pending(k); };
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

// --- periodic work ----------------------------------------------------------

void Agent::tick() {
  try {
    auto now = std::chrono::steady_clock::now();
    intake_.release_due();
    // Scans over the whole graph run once a second, not every tick.
    if (now - last_slow_tick_ >= std::chrono::seconds(1)) {
      last_slow_tick_ = now;
      check_learn_window(Clock::now());
      check_bridge_netfilter();
      check_workload_windows(Clock::now());
      expire_approvals(Clock::now());
      programmer_.collect_ids(Clock::now(), cfg_.id_reuse_after);
    }
    alerts_.flush(Clock::now());
    // The backstop for lost change notices: a cheap generation check; a reconcile only if it moved.
    if (now - last_gen_check_ >= kGenerationCheck) {
      last_gen_check_ = now;
      programmer_.check_generation();
    }
    if (dirty_ && now - last_save_ >= std::chrono::seconds(1)) {
      last_save_ = now;
      (void)persist();  // a failure is logged and counted there, and retried next second
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

void Agent::check_learn_window(TimePoint now) {
  if (!state_.learn_until || now < *state_.learn_until) return;
  if (state_.modes.global == Mode::learn) {
    spdlog::info("learning window over: {} edges learned; switching to {}", state_.graph.edges().size(),
                 to_string(cfg_.after_learn));
    state_.modes.global = cfg_.after_learn;
  }
  state_.learn_until.reset();
  dirty_ = true;
  programmer_.request_full();
}

void Agent::set_global_mode(Mode m, std::optional<std::chrono::seconds> learn_for) {
  state_.modes.global = m;
  state_.learn_until.reset();
  if (m == Mode::learn && learn_for) state_.learn_until = Clock::now() + *learn_for;
  dirty_ = true;
  programmer_.request_full();
  programmer_.apply_now();  // one transaction, before the caller hears back
  spdlog::info("mode set to {}", to_string(m));
}

// --- control API -----------------------------------------------------------

json Agent::handle(const json& req, const control::Peer& peer, const control::PushFn& push) {
  return api_.handle(req, peer, push);
}

// One line per method: the names, rights and streaming are declared once (topowall/control_methods.hpp).
void Agent::register_methods() {
  using namespace control;
  api_.add(kStatus, [this](const json&) { return ok(status_json()); });
  api_.add(kWorkloads, [this](const json&) { return ok(workloads_json()); });
  api_.add(kFlowsPending, [this](const json&) { return ok(topology::pending_to_json(state_.graph)); });
  api_.add(kRulesShow, [this](const json&) { return rules_show(); });
  api_.add(kTopologyExport, [this](const json& p) { return export_topology(p); });
  api_.add(kExplain, [this](const json& p) { return explain(p); });
  api_.add(kTopologyDiff, [this](const json& p) { return diff_graph(p); });
  api_.add(kFlowsApprove, [this](const json& p) { return decide_flows(p, topology::EdgeState::approved); });
  api_.add(kFlowsDeny, [this](const json& p) { return decide_flows(p, topology::EdgeState::denied); });
  api_.add(kTopologyImport, [this](const json& p) { return import_graph(p); });
  api_.add(kEdgesRemove, [this](const json& p) { return remove_edge(p); });
  api_.add(kModeSet, [this](const json& p) { return set_mode(p); });
  api_.add_stream(kFlowsWatch, [this](const json&, const control::PushFn& push) -> json {
    if (!alerts_.watch(push)) return control::error_response("busy", "too many watchers (64); close one");
    push(ok(json{{"watching", true}}));
    return nullptr;  // the answer is the stream
  });
}

// A change is answered only once it is saved: a live change the state file lacks would be lost on restart.
json Agent::committed(json result) {
  dirty_ = true;
  if (auto st = persist(); !st)
    return control::error_response("not_saved", "the change is live but saving the state failed (" + st.error().message +
                                                    "); it is retried every second: check the state directory");
  return ok(std::move(result));
}

json Agent::rules_show() {
  if (const auto& m = programmer_.applied()) return ok(topology::render_nft(*m));
  return ok(topology::render_nft(
      topology::compile({state_.graph, endpoints_, state_.modes, Clock::now()}, state_.ids, cfg_.ruleset)));
}

json Agent::export_topology(const json& params) const {
  auto fmt = params.value("format", std::string("json"));
  if (fmt == "json") return ok(topology::graph_to_json(state_.graph, &endpoints_));
  if (fmt == "dot") return ok(topology::export_dot(state_.graph));
  if (fmt == "mermaid") return ok(topology::export_mermaid(state_.graph));
  if (fmt == "networkpolicy")
    return ok(topology::export_networkpolicy(state_.graph, cfg_.identity.labels.empty() ? "app" : cfg_.identity.labels[0]));
  return control::error_response("bad_params", "unknown format '" + fmt + "' (json, dot, mermaid, networkpolicy)");
}

json Agent::remove_edge(const json& params) {
  topology::EdgeKey k;
  k.src = params.value("src", "");
  k.dst = params.value("dst", "");
  auto proto = parse_proto(params.value("proto", ""));
  auto port = uint_param(params, "port");
  if (!proto || !port || *port > 65535) return control::error_response("bad_params", "edges.remove needs src, dst, proto and port");
  k.proto = *proto;
  k.port = static_cast<std::uint16_t>(*port);
  if (!state_.graph.erase(k)) return control::error_response("not_found", "no edge " + k.to_string());
  spdlog::info("edge revoked: {}", k.to_string());
  share_decision(k, "removed", nullptr);
  programmer_.touch(k);
  programmer_.apply_now();  // also removes the connections it allowed
  return committed(json{{"removed", k.to_string()}});
}

json Agent::set_mode(const json& params) {
  auto mode = parse_mode(params.value("mode", std::string()));
  if (!mode) return control::error_response("bad_params", "mode must be learn, monitor or enforce");
  std::optional<std::chrono::seconds> learn_for;
  if (auto f = uint_param(params, "for_seconds")) learn_for = std::chrono::seconds(*f);
  auto workload = params.value("workload", std::string());
  if (workload.empty()) {
    set_global_mode(*mode, learn_for);
    return committed(status_json());
  }
  if (!topology::is_valid_name(workload)) return control::error_response("bad_params", "invalid workload name");
  if (params.value("clear", false)) state_.modes.overrides.erase(workload);
  else state_.modes.overrides[workload] = *mode;
  state_.workload_learn_until.erase(workload);
  if (*mode == Mode::learn && learn_for) state_.workload_learn_until[workload] = Clock::now() + *learn_for;
  programmer_.request_full();
  programmer_.apply_now();
  return committed(status_json());
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
  if (pending_log_limiter_.allow(key.src, Clock::now())) spdlog::warn("flow outside the graph: {}", key.to_string());
  else spdlog::debug("flow outside the graph: {}", key.to_string());
}

// --- per-workload learning --------------------------------------------------

void Agent::on_new_workload(const std::string& name, TimePoint now) {
  if (state_.modes.global == Mode::learn || state_.modes.overrides.count(name)) return;
  if (cfg_.new_workload_learn_for.count() <= 0) return;  // enforced at once
  state_.modes.overrides[name] = Mode::learn;
  state_.workload_learn_until[name] = now + cfg_.new_workload_learn_for;
  spdlog::info("new workload {} learns on its own for {}s", name, cfg_.new_workload_learn_for.count());
  dirty_ = true;
}

void Agent::check_workload_windows(TimePoint now) {
  for (auto it = state_.workload_learn_until.begin(); it != state_.workload_learn_until.end();) {
    if (now < it->second) {
      ++it;
      continue;
    }
    auto o = state_.modes.overrides.find(it->first);
    if (o != state_.modes.overrides.end() && o->second == Mode::learn) state_.modes.overrides.erase(o);
    spdlog::info("learning window of workload {} over; it now follows the node ({})", it->first,
                 to_string(state_.modes.of(it->first)));
    it = state_.workload_learn_until.erase(it);
    dirty_ = true;
    programmer_.request_full();
  }
  if (cfg_.auto_promote_after.count() <= 0) return;
  // Last sign of learning per workload: its first sighting or its newest edge (one pass).
  std::map<std::string, TimePoint> last;
  for (const auto& [w, rec] : state_.graph.workloads()) last[w] = rec.first_seen;
  for (const auto& [k, e] : state_.graph.edges())
    for (const auto* w : {&k.src, &k.dst}) {
      auto& t = last[*w];
      t = std::max(t, e.first_seen);
    }
  for (const auto& [w, ids] : endpoints_.workloads()) {
    if (state_.modes.of(w) != Mode::learn || now - last[w] < cfg_.auto_promote_after) continue;
    spdlog::info("workload {} learned nothing new for {}s: promoted to enforce", w, cfg_.auto_promote_after.count());
    state_.modes.overrides[w] = Mode::enforce;
    state_.workload_learn_until.erase(w);
    dirty_ = true;
    programmer_.request_full();
  }
}

// --- operator decisions ----------------------------------------------------

void Agent::expire_approvals(TimePoint now) {
  bool any = false;
  for (auto it = state_.graph.edges().begin(); it != state_.graph.edges().end();) {
    if (it->second.expires && *it->second.expires <= now) {
      spdlog::info("approval expired: {}", it->first.to_string());
      programmer_.touch(it->first);
      it = state_.graph.edges().erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  if (any) dirty_ = true;
}

json Agent::decide_flows(const json& params, topology::EdgeState state) {
  // Select pending flows by id, or all of them, optionally by source/destination.
  std::vector<topology::EdgeKey> chosen;
  std::set<std::uint64_t> want;
  if (params.contains("ids")) {
    if (!params["ids"].is_array()) return control::error_response("bad_params", "ids must be an array of numbers");
    for (const auto& i : params["ids"]) {
      auto id = as_uint(i);
      if (!id) return control::error_response("bad_params", "ids must be an array of numbers");
      want.insert(*id);
    }
  }
  const bool all = params.value("all", false);
  const auto src = params.value("src", ""), dst = params.value("dst", "");
  if (!params.contains("ids") && !all && src.empty() && dst.empty())
    return control::error_response("bad_params", "name pending flow ids, or --all, --src or --dst");
  for (const auto& [k, p] : state_.graph.pending()) {
    // Ids pick exactly those flows; otherwise --all/--src/--dst select.
    bool pick = params.contains("ids") ? want.count(p.id) > 0 : true;
    if (!src.empty() && k.src != src) pick = false;
    if (!dst.empty() && k.dst != dst) pick = false;
    if (pick) {
      chosen.push_back(k);
      want.erase(p.id);
    }
  }
  if (!want.empty()) {
    // Nothing changes unless every id is known.
    return control::error_response("not_found", "no pending flow with id " + std::to_string(*want.begin()) +
                                                    " (see topowall flows pending)");
  }
  std::optional<TimePoint> expires;
  if (auto f = uint_param(params, "for_seconds")) expires = Clock::now() + std::chrono::seconds(*f);
  std::string comment = params.value("comment", "");
  if (comment.size() > 1024) return control::error_response("bad_params", "comment longer than 1024 bytes");
  json done = json::array();
  auto now = Clock::now();
  for (const auto& k : chosen) {
    const auto p = *state_.graph.take_pending(k);
    auto& e = state_.graph.edges()[k];
    e.state = state;
    e.count += p.count;
    e.first_seen = p.first_seen;
    e.last_seen = std::max(p.last_seen, now);
    e.comment = comment;
    e.expires = state == topology::EdgeState::approved ? expires : std::nullopt;
    spdlog::info("flow {}: {}", to_string(state), k.to_string());
    done.push_back(k.to_string());
    programmer_.touch(k);
    share_decision(k, std::string(to_string(state)), &e);
  }
  programmer_.apply_now();  // live in the kernel before the operator hears back
  return committed(json{{to_string(state), done}});
}

// The answer is the compiled ruleset's own verdict (topology::judge, which the kernel rules implement),
// never a second reading of the graph: explain cannot disagree with the kernel.
json Agent::explain(const json& params) const {
  using Why = topology::Judgement::Why;
  auto proto = parse_proto(params.value("proto", ""));
  auto port = uint_param(params, "port");
  if (!proto || !port || *port > 65535)
    return control::error_response("bad_params", "explain needs src, dst, proto and port");
  const std::string src = params.value("src", ""), dst = params.value("dst", "");
  auto sip = IpAddr::parse(src), dip = IpAddr::parse(dst);
  topology::EdgeKey k{sip ? endpoints_.resolve(*sip) : src, dip ? endpoints_.resolve(*dip) : dst, *proto,
                      static_cast<std::uint16_t>(*port)};
  json r{{"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)}, {"port", k.port}};
  if (const auto* e = state_.graph.find(k)) r["edge"] = {{"state", to_string(e->state)}, {"count", e->count}};
  auto unknown = [&](std::string why) {
    r["verdict"] = "unknown";
    r["reason"] = std::move(why);
    return ok(r);
  };
  if (!programmer_.applied()) return unknown("no ruleset in the kernel yet");
  const auto& m = *programmer_.applied();
  topology::Judgement j;
  if (sip && dip) {
    if (sip->family != dip->family) return control::error_response("bad_params", "src and dst are of different families");
    j = topology::judge(m, *sip, *dip, *proto, k.port);
  } else {
    // By name: the verdict any address of that name gets; a workload without an address matches nothing.
    auto side = [&](const std::string& name, const std::optional<IpAddr>& ip) {
      return ip ? topology::classify(m, *ip) : topology::Side{state_.ids.find(name), endpoints_.is_workload(name)};
    };
    auto s = side(k.src, sip), d = side(k.dst, dip);
    for (auto [name, id] : {std::pair{k.src, s.id}, std::pair{k.dst, d.id}})
      if (!m.names.count(id))
        return unknown("'" + name + "' has no address on this node or in the cluster: nothing to judge");
    j = topology::judge_ids(m, s.id, s.endpoint, d.id, d.endpoint, *proto, k.port);
  }
  static constexpr const char* kVerdict[] = {"allow", "allow+alert", "drop"};
  r["verdict"] = kVerdict[static_cast<int>(j.verdict)];
  r["failsafe"] = j.why == Why::failsafe;
  const bool src_w = m.enforced.count(j.src) || m.monitored.count(j.src) || endpoints_.is_workload(k.src);
  r["mode"] = to_string(state_.modes.effective(k.src, src_w, k.dst, endpoints_.is_workload(k.dst)));
  switch (j.why) {
    case Why::not_ours: r["reason"] = "neither end is an endpoint this node judges (" + k.src + ", " + k.dst + ")"; break;
    case Why::failsafe: r["reason"] = "failsafe port of the node"; break;
    case Why::edge: r["reason"] = "edge " + k.to_string() + " is in the ruleset"; break;
    case Why::enforced: r["reason"] = "no edge " + k.to_string() + " and an end is enforced"; break;
    case Why::monitored: r["reason"] = "no edge " + k.to_string() + " and an end is monitored"; break;
    case Why::learning: r["reason"] = "no edge " + k.to_string() + " yet; both ends learn"; break;
  }
  if (r.contains("edge") && r["edge"]["state"] == "denied") r["reason"] = "edge " + k.to_string() + " is denied";
  return ok(r);
}

json Agent::import_graph(const json& params) {
  if (!params.contains("graph")) return control::error_response("bad_params", "topology.import needs 'graph'");
  // Validated as a whole first: an invalid file changes nothing.
  auto g = topology::graph_from_json(params["graph"]);
  if (!g) return control::error_response("invalid_graph", g.error().message);
  auto pending = state_.graph.pending();
  auto next = state_.graph.next_pending_id();
  state_.graph = std::move(*g);
  state_.graph.set_next_pending_id(next);
  for (auto& [k, p] : pending)
    if (!state_.graph.find(k)) state_.graph.restore_pending(k, p);
  spdlog::info("graph imported: {} edges", state_.graph.edges().size());
  programmer_.request_full();
  programmer_.apply_now();
  return committed(json{{"edges", state_.graph.edges().size()}, {"workloads", state_.graph.workloads().size()}});
}

json Agent::diff_graph(const json& params) const {
  if (!params.contains("graph")) return control::error_response("bad_params", "topology.diff needs 'graph'");
  auto g = topology::graph_from_json(params["graph"]);
  if (!g) return control::error_response("invalid_graph", g.error().message);
  json only_file = json::array(), only_live = json::array(), changed = json::array();
  for (const auto& [k, e] : g->edges()) {
    const auto* live = state_.graph.find(k);
    if (!live) only_file.push_back(k.to_string());
    else if (live->state != e.state)
      changed.push_back({{"edge", k.to_string()}, {"file", to_string(e.state)}, {"live", to_string(live->state)}});
  }
  for (const auto& [k, e] : state_.graph.edges())
    if (!g->find(k)) only_live.push_back(k.to_string());
  return ok(json{{"only_in_file", only_file}, {"only_live", only_live}, {"state_changed", changed}});
}

}  // namespace topowall::agent
