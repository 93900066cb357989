// The agent's figures: `status`, its counters (declared in topology/src/counters.cpp) and `workloads`.
#include <algorithm>

#include "agent/agent.hpp"
#include "topowall/topology/radar.hpp"

namespace topowall::agent {

using nlohmann::json;

namespace {
double pct(std::deque<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}
}  // namespace

json Agent::status_json() const {
  auto now = time_->now();
  json learn = {{"new_edges_per_minute", learner_.new_edge_rate(now)},
                {"edges_last_5m", learner_.new_edge_rate(now) * 5}};
  if (state_.learn_until) {
    learn["until"] = topology::format_time(*state_.learn_until);
    learn["remaining_seconds"] =
        std::max<long long>(0, std::chrono::duration_cast<std::chrono::seconds>(*state_.learn_until - now).count());
  }
  learn["coverage"] = coverage_json(now, false);
  json overrides = json::object();
  for (const auto& [w, m] : state_.modes.overrides) overrides[w] = to_string(m);
  json j{{"mode", to_string(state_.modes.global)},
         {"mode_overrides", overrides},
         {"workloads", endpoints_.workloads().size()},
         {"endpoints", endpoints_.endpoints().size()},
         {"edges", state_.graph.edges().size()},
         {"pending", state_.graph.pending().size()},
         {"learning", learn},
         {"discovery_synced", discovery_synced()},
         {"uptime_seconds",
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count()}};
  if (ad_.runtime) j["runtime_connected"] = ad_.runtime->stats().connected;
  if (ad_.cluster) {
    j["cluster_connected"] = ad_.cluster->stats().connected;
    j["cluster_synced"] = registry_.cluster_synced();
    j["remote_endpoints"] = registry_.remote_count();
  }
  j["ruleset_applied"] = programmer_.in_sync();
  if (ad_.flows) j["conntrack_events"] = ad_.flows->stats().subscribed ? "subscribed" : "paused";
  j["ruleset_degraded"] = programmer_.counters().degraded;
  j["bridge_netfilter"] = counters_.bridge_netfilter;
  // Runtime event received -> its endpoint in the kernel (inspect included).
  const auto& lat = programmer_.event_to_enforced_ms();
  j["event_to_enforced_ms"] = json{{"p50", pct(lat, 0.5)}, {"p99", pct(lat, 0.99)}, {"samples", lat.size()}};
  j["counters"] = counters_json();
  j["alerts_rate_limited_by_workload"] = alerts_.rate_limited_by_workload();
  return j;
}

// A counter for every degraded path, in one place: the agent's own classes, then each adapter's.
json Agent::counters_json() const {
  json counters = core_counters();
  add_discovery_counters(counters);
  add_ruleset_counters(counters);
  counters["alert_sink_drops"] = alerts_.sink_drops();
  return counters;
}

json Agent::core_counters() const {
  const auto& ls = learner_.stats();
  json counters{{"flows", ls.flows},
                {"flows_not_ours", ls.not_ours},
                {"new_edges", ls.new_edges},
                {"pending_flows", ls.pending},
                {"pending_evicted", ls.pending_evicted + counters_.pending_evicted},
                {"flows_unanswered", ls.unanswered},
                {"flows_refused", ls.refused},
                {"learn_held", ls.held},
                {"learn_quarantines", ls.quarantines},
                {"learn_one_way", ls.one_way_learned},
                {"deferred_flows", intake_.counters().deferred},
                {"deferred_overflow", intake_.counters().overflow},
                {"endpoint_upserts", registry_.counters().upserts},
                {"endpoint_removes", registry_.counters().removes},
                {"persist_errors", counters_.persist_errors},
                {"state_save_ms", counters_.state_save_ms},
                {"heap_trims", counters_.heap_trims},
                {"heap_trim_ms", counters_.heap_trim_ms},
                {"handler_errors", counters_.handler_errors + programmer_.counters().handler_errors +
                                       alerts_.counters().handler_errors + api_.handler_errors() +
                                       registry_.counters().handler_errors + intake_.counters().handler_errors}};
  return counters;
}

// Conntrack, discovery (runtime, namespaces, cluster) and the control socket.
void Agent::add_discovery_counters(json& counters) const {
  if (ad_.flows) {
    auto fs = ad_.flows->stats();
    counters["conntrack_messages"] = fs.messages;
    counters["conntrack_flows"] = fs.flows;
    counters["conntrack_enobufs"] = fs.enobufs;
    counters["conntrack_resyncs"] = fs.resyncs;
    counters["conntrack_resyncs_coalesced"] = fs.resyncs_coalesced;
    counters["conntrack_resync_entries"] = fs.resync_entries;
    counters["conntrack_errors"] = fs.errors;
    counters["conntrack_filter_failed"] = fs.filter_failures;
    counters["conntrack_subscribe_failed"] = fs.subscribe_failures;
    counters["conntrack_undecodable"] = fs.undecodable;
    counters["conntrack_rcvbuf_bytes"] = fs.rcvbuf_bytes;
  }
  if (ad_.runtime) {
    auto rs = ad_.runtime->stats();
    counters["runtime_events"] = rs.events;
    counters["runtime_errors"] = rs.errors;
    counters["runtime_reconnects"] = rs.reconnects;
    counters["runtime_host_network"] = rs.host_network;
    counters["runtime_inspects"] = rs.inspects;
  }
  if (ad_.netns) {
    auto ns = ad_.netns->stats();
    counters["netns_events"] = ns.events;
    counters["netns_errors"] = ns.errors;
  }
  if (ad_.cluster) {
    auto cs = ad_.cluster->stats();
    counters["cluster_publishes"] = cs.publishes;
    counters["cluster_events"] = cs.events;
    counters["cluster_errors"] = cs.errors;
    counters["cluster_resyncs"] = cs.resyncs;
    counters["cluster_values_refused"] = cs.values_refused;
    counters["cluster_claims_refused"] = cs.claims_refused;
    counters["cluster_ranges_refused"] = cs.ranges_refused;
    counters["cluster_decisions_local"] = cs.decisions_local;
  }
  if (server_) {
    counters["control_requests"] = server_->stats().requests;
    counters["control_rejected"] = server_->stats().rejected;
    counters["control_paused"] = server_->stats().paused;
    counters["control_slow_closed"] = server_->stats().slow_closed;
    counters["control_output_bytes"] = server_->stats().output_bytes;
  }
}

// Journal, programmer, alerts, the nftables writer and NFLOG.
void Agent::add_ruleset_counters(json& counters) const {
  const auto& jc = history_.journal_counters();
  counters["journal_records"] = jc.records;
  counters["journal_bytes"] = history_.journal_bytes();
  counters["journal_rotations"] = jc.rotations;
  counters["journal_write_errors"] = jc.write_errors;
  counters["journal_truncated_bytes"] = jc.truncated_bytes;
  const auto& pc = programmer_.counters();
  counters["ruleset_applies"] = pc.applies;
  counters["ruleset_apply_errors"] = pc.apply_errors;
  counters["conntrack_deleted"] = pc.conntrack_deleted;
  counters["edge_use_errors"] = edge_use_.errors();
  const auto& ac = alerts_.counters();
  counters["alerts"] = ac.alerts;
  counters["alerts_suppressed"] = alerts_.suppressed();
  counters["alerts_rate_limited"] = alerts_.rate_limited();
  counters["ids_over_capacity"] = pc.ids_over_capacity;
  counters["ids_released"] = pc.ids_released;
  counters["ruleset_repairs"] = pc.ruleset_repairs;
  counters["address_claims_refused"] = registry_.counters().claims_refused;
  counters["ruleset_checks"] = pc.ruleset_checks;
  counters["ruleset_read_backs"] = pc.ruleset_read_backs;
  counters["ruleset_notices_lost"] = ad_.ruleset_watch ? ad_.ruleset_watch->losses() : 0;
  counters["guard_spoofed"] = ac.spoofed;
  counters["guard_unclassified"] = ac.unclassified;
  if (ad_.writer) {
    auto ws = ad_.writer->stats();
    counters["nft_full_applies"] = ws.full_applies;
    counters["nft_element_changes"] = ws.element_changes;
    counters["nft_errors"] = ws.errors;
    counters["nft_noop_applies"] = ws.noop_applies;
    counters["ctmark_taken"] = ws.ctmark_taken;
  }
  if (ad_.alerts) {
    auto as = ad_.alerts->stats();
    counters["nflog_packets"] = as.packets;
    counters["nflog_enobufs"] = as.enobufs;
    counters["nflog_errors"] = as.errors;
    counters["nflog_undecodable"] = as.undecodable;
  }
}

json Agent::radar_json() const {
  return topology::radar_model({state_.graph, &endpoints_, &state_.modes, alerts_.recent(), time_->now()});
}

// Per workload: how far learning got (coverage, convergence) and what it did not trust. `full` adds the
// new-edge curve (workloads); status keeps it short.
json Agent::coverage_json(TimePoint now, bool full) const {
  std::vector<std::string> names;
  for (const auto& [w, ids] : endpoints_.workloads()) names.push_back(w);
  topology::CoverageConfig cc;
  cc.quiet = cfg_.converge_after;
  json out = json::object();
  for (const auto& [w, c] : topology::coverage(state_.graph, names, signals_, now, cc)) {
    auto j = topology::coverage_to_json(c, now, cc);
    if (!full) j.erase("new_edge_curve");
    const auto& attempts = learner_.attempts();
    auto it = attempts.find(w);
    const topology::WorkloadAttempts none;
    const auto& a = it == attempts.end() ? none : it->second;
    j["unanswered"] = a.unanswered;
    j["refused"] = a.refused;
    j["held"] = a.held;
    j["quarantines"] = a.quarantines;
    auto q = learner_.quarantine_of(w);
    j["quarantine"] = q ? json(*q) : json(nullptr);
    out[w] = std::move(j);
  }
  return out;
}

json Agent::workloads_json() const {
  const auto cov = coverage_json(time_->now(), true);
  json out = json::array();
  for (const auto& [name, eps] : endpoints_.workloads()) {
    json addrs = json::array(), containers = json::array();
    json labels = json::object();
    for (const auto* ep : eps) {
      json caddrs = json::array();
      for (const auto& a : ep->info.addresses) {
        addrs.push_back(a.to_string());
        caddrs.push_back(a.to_string());
      }
      containers.push_back({{"id", ep->info.id},
                            {"name", ep->info.name},
                            {"image", ep->info.image},
                            {"kind", ep->info.kind == EndpointKind::container ? "container" : "netns"},
                            {"addresses", caddrs}});
      if (labels.empty()) labels = ep->info.labels;
    }
    out.push_back({{"name", name},
                   {"labels", labels},
                   {"addresses", addrs},
                   {"containers", containers},
                   {"replicas", eps.size()},
                   {"mode", to_string(state_.modes.of(name))},
                   {"learning", cov.value(name, json::object())}});
  }
  return out;
}

}  // namespace topowall::agent
