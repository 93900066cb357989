#include "agent/policy_service.hpp"

#include <spdlog/spdlog.h>

#include <set>

#include "agent/control_api.hpp"
#include "agent/graph_transfer.hpp"
#include "agent/params.hpp"
#include "cluster/etcd_codec.hpp"
#include "control/server.hpp"
#include "topowall/topology/exporters.hpp"
#include "topowall/topology/identity.hpp"

namespace topowall::agent {

using nlohmann::json;

namespace {
const std::string kForSecondsRange = "for_seconds must be a whole number of seconds from 0 to " +
                                     std::to_string(kMaxForSeconds) + " (100 years)";
}  // namespace

Reply Reply::fail(const std::string& code, const std::string& message) {
  return Reply{control::error_response(code, message), true};
}

PolicyService::PolicyService(const PolicyConfig& cfg, topology::State& state, const topology::EndpointTable& endpoints,
                             RulesetProgrammer& programmer, const TimeSource& time)
    : cfg_(cfg), state_(state), endpoints_(endpoints), programmer_(programmer), time_(time) {}

void PolicyService::tick() {
  const auto now = time_.now();
  check_learn_window(now);
  check_workload_windows(now);
  auto_promote(now);
  expire_approvals(now);
}

// An operator's decision made on another node: the same change as if made here.
void PolicyService::apply_decision(const ClusterDecision& d) {
  const topology::EdgeKey k{d.src, d.dst, d.proto, d.port};
  auto& g = state_.graph;
  if (d.state == "removed") {
    if (!g.erase(k)) return;
  } else {
    const auto state = d.state == "approved" ? topology::EdgeState::approved : topology::EdgeState::denied;
    const auto expires =
        state == topology::EdgeState::approved && !d.until.empty() ? topology::parse_time(d.until) : std::nullopt;
    // Replayed on every reconnect: what already stands costs nothing.
    if (const auto cur = g.find(k);
        cur && cur->state == state && cur->comment == d.comment && cur->expires == expires && !g.pending().count(k))
      return;
    decide(k, state, d.comment, expires, time_.now());
  }
  spdlog::info("edge {} {} on node {}", k.to_string(), d.state, d.node);
  dirty();
  // Programmed within this loop turn, a replay's decisions in one transaction; a removal also cuts the
  // connections it allowed.
  programmer_.touch(k);
}

// One decision on one edge, from an operator here or on another node: a pending flow becomes the edge
// (its counts kept), an existing edge changes state. The kernel follows within the loop turn.
topology::EdgeInfo PolicyService::decide(const topology::EdgeKey& k, topology::EdgeState state, const std::string& comment,
                                         std::optional<TimePoint> expires, TimePoint now) {
  auto& g = state_.graph;
  auto e = g.find(k).value_or(topology::EdgeInfo{});
  if (auto p = g.take_pending(k)) {
    e.count += p->count;
    e.first_seen = p->first_seen;
    e.last_seen = std::max(e.last_seen, p->last_seen);
  }
  if (e.first_seen == TimePoint{}) e.first_seen = now;
  e.last_seen = std::max(e.last_seen, now);
  e.state = state;
  e.comment = comment;
  e.expires = state == topology::EdgeState::approved ? expires : std::nullopt;
  g.edges().set(k, e);
  programmer_.touch(k);
  return e;
}

// Hands the decision to the cluster store (which writes it only with a decisions credential) and adds it
// to the operator's answer, so that the CLI can write it with the operator's own etcd credential.
void PolicyService::share_decision(const topology::EdgeKey& k, const std::string& state, const topology::EdgeInfo* e,
                                   json& answer) {
  ClusterDecision d{k.src, k.dst, k.proto, k.port, state, "", "", ""};
  if (e) {
    d.comment = e->comment;
    if (e->expires) d.until = topology::format_time(*e->expires);
  }
  auto& list = answer["decisions"];
  if (!list.is_array()) list = json::array();
  list.push_back(json::parse(cluster::encode_decision(d)));
  if (!cluster_) return;
  const bool shared = cluster_->decide(d);
  answer["cluster_shared"] = answer.value("cluster_shared", true) && shared;
}


void PolicyService::check_learn_window(TimePoint now) {
  if (!state_.learn_until || now < *state_.learn_until) return;
  if (state_.modes.global == Mode::learn) {
    spdlog::info("learning window over: {} edges learned; switching to {}", state_.graph.edges().size(),
                 to_string(cfg_.after_learn));
    state_.modes.global = cfg_.after_learn;
  }
  state_.learn_until.reset();
  dirty();
  programmer_.request_full();
}

void PolicyService::set_global_mode(Mode m, std::optional<std::chrono::seconds> learn_for) {
  state_.modes.global = m;
  state_.learn_until.reset();
  if (m == Mode::learn && learn_for) state_.learn_until = time_.now() + *learn_for;
  dirty();
  programmer_.request_full();
  programmer_.apply_now();  // one transaction, before the caller hears back
  spdlog::info("mode set to {}", to_string(m));
}


Reply PolicyService::remove_edge(const json& params) {
  topology::EdgeKey k;
  k.src = params.value("src", "");
  k.dst = params.value("dst", "");
  auto pp = proto_port(params);
  if (!pp) return Reply::fail("bad_params", "edges.remove needs src, dst, proto and port");
  std::tie(k.proto, k.port) = *pp;
  if (!state_.graph.erase(k)) return Reply::fail("not_found", "no edge " + k.to_string());
  spdlog::info("edge revoked: {}", k.to_string());
  json answer{{"removed", k.to_string()}};
  share_decision(k, "removed", nullptr, answer);
  programmer_.touch(k);
  programmer_.apply_now();  // also removes the connections it allowed
  return Reply{std::move(answer)};
}

Reply PolicyService::set_mode(const json& params) {
  auto mode = parse_mode(params.value("mode", std::string()));
  if (!mode) return Reply::fail("bad_params", "mode must be learn, monitor or enforce");
  const auto for_seconds = seconds_param(params, "for_seconds");
  if (!for_seconds.valid) return Reply::fail("bad_params", kForSecondsRange);
  const auto learn_for = for_seconds.value;
  auto workload = params.value("workload", std::string());
  if (workload.empty()) {
    set_global_mode(*mode, learn_for);
    return Reply{};
  }
  if (!topology::is_valid_name(workload)) return Reply::fail("bad_params", "invalid workload name");
  if (params.value("clear", false)) state_.modes.overrides.erase(workload);
  else state_.modes.overrides[workload] = *mode;
  state_.workload_learn_until.erase(workload);
  if (*mode == Mode::learn && learn_for) state_.workload_learn_until[workload] = time_.now() + *learn_for;
  programmer_.request_full();
  programmer_.apply_now();
  return Reply{};
}


// --- per-workload learning --------------------------------------------------

void PolicyService::on_new_workload(const std::string& name) {
  const auto now = time_.now();
  if (state_.modes.global == Mode::learn || state_.modes.overrides.count(name)) return;
  if (cfg_.new_workload_learn_for.count() <= 0) return;  // enforced at once
  state_.modes.overrides[name] = Mode::learn;
  state_.workload_learn_until[name] = now + cfg_.new_workload_learn_for;
  spdlog::info("new workload {} learns on its own for {}s", name, cfg_.new_workload_learn_for.count());
  dirty();
}

void PolicyService::check_workload_windows(TimePoint now) {
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
    dirty();
    programmer_.request_full();
  }
}

void PolicyService::auto_promote(TimePoint now) {
  if (cfg_.auto_promote_after.count() <= 0) return;
  std::vector<std::string> learning;
  for (const auto& [w, ids] : endpoints_.workloads())
    if (state_.modes.of(w) == Mode::learn) learning.push_back(w);
  if (learning.empty()) return;
  // Converged, not merely quiet: nothing new learned, held or attempted for the period, and not quarantined.
  topology::CoverageConfig cc;
  cc.quiet = cfg_.auto_promote_after;
  cc.buckets = 0;
  for (const auto& [w, c] : topology::coverage(state_.graph, learning, signals_, now, cc)) {
    if (!c.converged) continue;
    spdlog::info("workload {} converged (nothing new for {}s; {} edges, {} peers): promoted to enforce", w,
                 cfg_.auto_promote_after.count(), c.edges, c.peers);
    state_.modes.overrides[w] = Mode::enforce;
    state_.workload_learn_until.erase(w);
    dirty();
    programmer_.request_full();
  }
}

// --- operator decisions ----------------------------------------------------

void PolicyService::expire_approvals(TimePoint now) {
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
  if (any) dirty();
}

Reply PolicyService::decide_flows(const json& params, topology::EdgeState state) {
  // Select pending flows by id, or all of them, optionally by source/destination.
  std::vector<topology::EdgeKey> chosen;
  std::set<std::uint64_t> want;
  if (params.contains("ids")) {
    if (!params["ids"].is_array()) return Reply::fail("bad_params", "ids must be an array of numbers");
    for (const auto& i : params["ids"]) {
      auto id = as_uint(i);
      if (!id) return Reply::fail("bad_params", "ids must be an array of numbers");
      want.insert(*id);
    }
  }
  const bool all = params.value("all", false);
  const auto src = params.value("src", ""), dst = params.value("dst", "");
  if (!params.contains("ids") && !all && src.empty() && dst.empty())
    return Reply::fail("bad_params", "name pending flow ids, or --all, --src or --dst");
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
    return Reply::fail("not_found",
                       "no pending flow with id " + std::to_string(*want.begin()) + " (see topowall flows pending)");
  }
  const auto for_seconds = seconds_param(params, "for_seconds");
  if (!for_seconds.valid) return Reply::fail("bad_params", kForSecondsRange);
  std::optional<TimePoint> expires;
  if (for_seconds.value) expires = time_.now() + *for_seconds.value;
  std::string comment = params.value("comment", "");
  if (comment.size() > 1024) return Reply::fail("bad_params", "comment longer than 1024 bytes");
  json answer{{to_string(state), json::array()}, {"decisions", json::array()}};
  auto now = time_.now();
  for (const auto& k : chosen) {
    const auto& e = decide(k, state, comment, expires, now);
    spdlog::info("flow {}: {}", to_string(state), k.to_string());
    answer[to_string(state)].push_back(k.to_string());
    share_decision(k, std::string(to_string(state)), &e, answer);
  }
  programmer_.apply_now();  // live in the kernel before the operator hears back
  return Reply{std::move(answer)};
}

// The answer is the compiled ruleset's own verdict (topology::judge, which the kernel rules implement),
// never a second reading of the graph: explain cannot disagree with the kernel.
json PolicyService::explain(const json& params) const {
  using Why = topology::Judgement::Why;
  auto pp = proto_port(params);
  if (!pp) return control::error_response("bad_params", "explain needs src, dst, proto and port");
  const auto [proto, port] = *pp;
  const std::string src = params.value("src", ""), dst = params.value("dst", "");
  auto sip = IpAddr::parse(src), dip = IpAddr::parse(dst);
  topology::EdgeKey k{sip ? endpoints_.resolve(*sip) : src, dip ? endpoints_.resolve(*dip) : dst, proto, port};
  json r{{"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)}, {"port", k.port}};
  if (const auto e = state_.graph.find(k)) r["edge"] = {{"state", to_string(e->state)}, {"count", e->count}};
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
    j = topology::judge(m, *sip, *dip, proto, k.port);
  } else {
    // By name: the verdict any address of that name gets; a workload without an address matches nothing.
    auto side = [&](const std::string& name, const std::optional<IpAddr>& ip) {
      return ip ? topology::classify(m, *ip) : topology::Side{state_.ids.find(name), endpoints_.is_workload(name)};
    };
    auto s = side(k.src, sip), d = side(k.dst, dip);
    for (auto [name, id] : {std::pair{k.src, s.id}, std::pair{k.dst, d.id}})
      if (!m.names.count(id))
        return unknown("'" + name + "' has no address on this node or in the cluster: nothing to judge");
    j = topology::judge_ids(m, s.id, s.endpoint, d.id, d.endpoint, proto, k.port);
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

std::optional<topology::Graph> PolicyService::graph_param(const json& params, int passed_fd, Reply& refusal) const {
  const auto from_fd = params.find("fd");
  if (from_fd != params.end() && *from_fd == true) {
    GraphReadError why;
    auto g = read_graph_fd(passed_fd, cfg_.max_import_bytes, why);
    if (g) return std::move(*g);
    refusal = Reply::fail(why.code, why.message);
    return std::nullopt;
  }
  if (!params.contains("graph")) {
    refusal = Reply::fail("bad_params", "needs 'graph', or 'fd': true with the graph file passed as a descriptor");
    return std::nullopt;
  }
  auto g = topology::graph_from_json(params["graph"]);
  if (g) return std::move(*g);
  refusal = Reply::fail("invalid_graph", g.error().message);
  return std::nullopt;
}

Reply PolicyService::import_graph(const json& params, int passed_fd) {
  // Validated as a whole first: an invalid file changes nothing.
  Reply refusal;
  auto g = graph_param(params, passed_fd, refusal);
  if (!g) return refusal;
  auto pending = state_.graph.pending();
  auto next = state_.graph.next_pending_id();
  state_.graph = std::move(*g);
  g.reset();  // the replaced graph's memory goes now, before the ruleset is compiled
  state_.graph.set_next_pending_id(next);
  for (auto& [k, p] : pending)
    if (!state_.graph.find(k)) state_.graph.restore_pending(k, p);
  spdlog::info("graph imported: {} edges", state_.graph.edges().size());
  programmer_.request_full();
  programmer_.apply_now();
  return Reply{json{{"edges", state_.graph.edges().size()}, {"workloads", state_.graph.workloads().size()}}};
}

json PolicyService::diff_graph(const json& params, int passed_fd) const {
  Reply refusal;
  auto g = graph_param(params, passed_fd, refusal);
  if (!g) return refusal.body;
  json only_file = json::array(), only_live = json::array(), changed = json::array();
  for (const auto& [k, e] : g->edges()) {
    const auto live = state_.graph.find(k);
    if (!live) only_file.push_back(k.to_string());
    else if (live->state != e.state)
      changed.push_back({{"edge", k.to_string()}, {"file", to_string(e.state)}, {"live", to_string(live->state)}});
  }
  for (const auto& [k, e] : state_.graph.edges())
    if (!g->find(k)) only_live.push_back(k.to_string());
  return ok(json{{"only_in_file", only_file}, {"only_live", only_live}, {"state_changed", changed}});
}

}  // namespace topowall::agent
