#include "topowall/topology/metrics.hpp"

#include "topowall/topology/counters.hpp"

#include <fmt/format.h>

#include <map>
#include <set>

namespace topowall::topology {
namespace {

using nlohmann::json;

void metric(std::string& out, const std::string& name, const char* type, const std::string& help_text,
            const std::string& samples) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", name, help_text, name, type, samples);
}

std::string number(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  return "";
}

// Label values escape backslash, quote and newline.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Prometheus names: [a-zA-Z0-9_], so anything else in a counter's key becomes '_'.
std::string metric_name(const std::string& key) {
  std::string out = key;
  for (char& c : out)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) c = '_';
  return out;
}

void gauge(std::string& out, const json& status, const std::string& key, const std::string& help_text) {
  if (!status.contains(key)) return;
  auto v = number(status[key]);
  if (v.empty()) return;
  const auto name = "topowall_" + key;
  metric(out, name, "gauge", help_text, fmt::format("{} {}\n", name, v));
}


// The plain gauges `status` carries at its top level, in export order.
constexpr std::pair<const char*, const char*> kGauges[] = {
    {"workloads", "workloads on this node"},
    {"endpoints", "endpoints (container or namespace addresses) on this node"},
    {"edges", "edges in the graph"},
    {"pending", "pending flows awaiting an operator"},
    {"discovery_synced", "1 once the runtime and namespace discovery have listed everything"},
    {"ruleset_applied", "1 once the ruleset is in the kernel"},
    {"ruleset_degraded", "1 while the last ruleset programming failed and is being retried"},
    {"bridge_netfilter", "1 when bridged traffic reaches the firewall's hooks (br_netfilter on)"},
    {"runtime_connected", "1 while the container runtime's event stream is connected"},
    {"cluster_connected", "1 while this node holds its cluster lease and watches the others"},
    {"cluster_synced", "1 once the other nodes' endpoints have been read"},
    {"remote_endpoints", "endpoints other nodes announced"},
    {"uptime_seconds", "seconds since the agent started"},
};

bool has_object(const json& status, const char* key) { return status.contains(key) && status[key].is_object(); }

void modes_text(std::string& out, const json& status) {
  if (status.contains("mode") && status["mode"].is_string()) {
    std::string samples;
    for (const char* m : {"learn", "monitor", "enforce"})
      samples += fmt::format("topowall_mode{{mode=\"{}\"}} {}\n", m, status["mode"] == m ? 1 : 0);
    metric(out, "topowall_mode", "gauge", "the global mode (1 for the current one)", samples);
  }
  if (has_object(status, "mode_overrides") && !status["mode_overrides"].empty()) {
    std::string samples;
    for (const auto& [w, m] : status["mode_overrides"].items())
      if (m.is_string())
        samples += fmt::format("topowall_workload_mode{{workload=\"{}\",mode=\"{}\"}} 1\n", label(w),
                               label(m.get<std::string>()));
    metric(out, "topowall_workload_mode", "gauge", "per-workload mode overrides", samples);
  }
}

void learning_text(std::string& out, const json& status) {
  if (!has_object(status, "learning")) return;
  const auto& l = status["learning"];
  if (l.contains("new_edges_per_minute"))
    metric(out, "topowall_learning_new_edges_per_minute", "gauge", "edges learned per minute, recently",
           fmt::format("topowall_learning_new_edges_per_minute {}\n", number(l["new_edges_per_minute"])));
  if (l.contains("remaining_seconds"))
    metric(out, "topowall_learning_remaining_seconds", "gauge", "seconds left in the learning window",
           fmt::format("topowall_learning_remaining_seconds {}\n", number(l["remaining_seconds"])));
}

void latency_text(std::string& out, const json& status) {
  if (!has_object(status, "event_to_enforced_ms")) return;
  const auto& e = status["event_to_enforced_ms"];
  std::string samples;
  for (const auto& [q, key] : {std::pair{"0.5", "p50"}, std::pair{"0.99", "p99"}})
    if (e.contains(key)) samples += fmt::format("topowall_event_to_enforced_ms{{quantile=\"{}\"}} {}\n", q, number(e[key]));
  if (e.contains("samples")) samples += fmt::format("topowall_event_to_enforced_ms_count {}\n", number(e["samples"]));
  metric(out, "topowall_event_to_enforced_ms", "summary",
         "runtime event to the endpoint programmed in the kernel, milliseconds (recent samples)", samples);
}

void rate_limited_text(std::string& out, const json& status) {
  if (!has_object(status, "alerts_rate_limited_by_workload") || status["alerts_rate_limited_by_workload"].empty()) return;
  std::string samples;
  for (const auto& [w, n] : status["alerts_rate_limited_by_workload"].items())
    if (auto v = number(n); !v.empty())
      samples += fmt::format("topowall_workload_alerts_rate_limited_total{{workload=\"{}\"}} {}\n", label(w), v);
  metric(out, "topowall_workload_alerts_rate_limited_total", "counter",
         "alerts not sent to the sinks because this source workload exceeded its rate", samples);
}

void counters_text(std::string& out, const json& status) {
  if (!has_object(status, "counters")) return;
  for (const auto& [key, v] : status["counters"].items()) {
    auto value = number(v);
    if (value.empty()) continue;
    // Declared once (counters.hpp); an undeclared one is still exported, as a counter named by its key.
    const auto* info = find_counter(key);
    const bool is_gauge = info && info->gauge;
    const auto name = "topowall_" + metric_name(key) + (is_gauge ? "" : "_total");
    metric(out, name, is_gauge ? "gauge" : "counter", info ? std::string(info->help) : key,
           fmt::format("{} {}\n", name, value));
  }
}

}  // namespace

std::string prometheus_text(const json& status) {
  std::string out;
  if (!status.is_object()) return out;
  modes_text(out, status);
  for (const auto& [key, help_text] : kGauges) gauge(out, status, key, help_text);
  learning_text(out, status);
  latency_text(out, status);
  rate_limited_text(out, status);
  counters_text(out, status);
  return out;
}

}  // namespace topowall::topology
