#include "agent/alert_pipeline.hpp"

#include <spdlog/spdlog.h>

#include "topowall/topology/identity.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::agent {

AlertPipeline::AlertPipeline(std::chrono::seconds window, topology::Rate rate,
                             std::vector<std::unique_ptr<alerts::Sink>> sinks, const topology::EndpointTable& endpoints,
                             const topology::Graph& graph)
    : aggregator_(window), limiter_(rate), sinks_(std::move(sinks)), endpoints_(endpoints), graph_(graph) {}

void AlertPipeline::on_logged(const LoggedPacket& p) {
  try {
    if (p.reason == "spoof" || p.reason == "unclassified") return on_guard(p);
    auto key = topology::edge_for(p.flow, endpoints_);
    if (!key) return;
    if (const auto e = graph_.find(*key); e && e->state == topology::EdgeState::denied) {
      ++counters_.alerts;  // denied flows stay blocked quietly: no pending entry
      return;
    }
    if (p.dropped) on_blocked_(*key, p.when);
    topology::Alert a;
    a.time = p.when;
    a.edge = *key;
    a.src_addr = p.flow.src.to_string();
    a.dst_addr = p.flow.dst.to_string();
    a.blocked = p.dropped;
    if (p.reason == "ctmark") a.reason = "ctmark_taken";
    raise(a);
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("alert handling failed: {}", e.what());
  }
}

void AlertPipeline::on_quarantine(const std::string& workload, const std::string& reason,
                                  const topology::EdgeKey& key, TimePoint when) {
  try {
    spdlog::warn("workload {} quarantined ({}): it reached more new edges than the limit while learning; its new "
                 "edges are held for review (topowall pending, approve, deny)",
                 workload, reason);
    topology::Alert a;
    a.time = when;
    a.edge = key;
    a.reason = reason;
    a.held = true;
    raise(a);
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("alert handling failed: {}", e.what());
  }
}

// The guard's drops: never pending, never learned; the alert names the container behind the port and
// whom its source address belongs to ("a sent as c").
void AlertPipeline::on_guard(const LoggedPacket& p) {
  topology::Alert a;
  a.time = p.when;
  a.blocked = true;
  a.reason = p.reason == "spoof" ? "spoofed" : "unclassified";
  ++(p.reason == "spoof" ? counters_.spoofed : counters_.unclassified);
  const auto& behind = endpoints_.workload_at_port(p.indev);
  a.edge.src = behind.empty() ? "unclassified" : behind;
  a.as = endpoints_.resolve(p.flow.src);
  a.edge.dst = endpoints_.resolve(p.flow.dst);
  a.arp = p.arp;  // a forged ARP reply or announcement: it has no transport protocol or port
  if (!p.arp) {
    a.edge.proto = p.flow.proto;
    a.edge.port = is_icmp(p.flow.proto) ? p.flow.icmp_type : p.flow.dport;
  }
  a.src_addr = p.flow.src.to_string();
  a.dst_addr = p.flow.dst.to_string();
  raise(a);
}

// One alert: to the live watchers at once, to the sinks through the aggregator.
void AlertPipeline::raise(const topology::Alert& a) {
  ++counters_.alerts;
  recent_.push_back(topology::alert_to_json(a));
  if (recent_.size() > kRecentAlerts) recent_.pop_front();
  if (!watchers_.empty()) {
    auto j = recent_.back();
    j["event"] = "alert";
    publish(j);
  }
  if (auto first = aggregator_.on_packet(a)) emit(*first);
}

void AlertPipeline::flush(TimePoint now) {
  for (const auto& a : aggregator_.flush(now)) emit(a);
}

void AlertPipeline::emit(const topology::Alert& a) {
  // Per source workload: a scanner spends its own bucket, never the other workloads' alerts.
  if (!limiter_.allow(a.edge.src, now())) return;
  for (auto& s : sinks_) s->send(a);
}

bool AlertPipeline::watch(control::PushFn push) {
  if (watchers_.size() >= kMaxWatchers) return false;
  watchers_.push_back(std::move(push));
  return true;
}

void AlertPipeline::publish(const nlohmann::json& event) {
  nlohmann::json line = event;
  line["time"] = topology::format_time(now());
  // A watcher whose connection closed is dropped here.
  std::erase_if(watchers_, [&](const control::PushFn& push) { return !push(line); });
}

std::uint64_t AlertPipeline::sink_drops() const {
  std::uint64_t n = 0;
  for (const auto& s : sinks_) n += s->dropped();
  return n;
}

}  // namespace topowall::agent
