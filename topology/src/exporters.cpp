#include "topowall/topology/exporters.hpp"

#include <fmt/format.h>

#include <set>

namespace topowall::topology {

namespace {
// Names are validated ([A-Za-z0-9._-]), so quoting them is enough for both formats.
std::set<std::string> nodes_of(const Graph& g) {
  std::set<std::string> nodes;
  for (const auto& [name, rec] : g.workloads()) nodes.insert(name);
  for (const auto& [k, e] : g.edges()) {
    nodes.insert(k.src);
    nodes.insert(k.dst);
  }
  return nodes;
}

std::string label(const EdgeKey& k) {
  return is_icmp(k.proto) ? fmt::format("{} type {}", to_string(k.proto), k.port)
                          : fmt::format("{}/{}", to_string(k.proto), k.port);
}
}  // namespace

std::string export_dot(const Graph& g) {
  std::string out = "digraph topowall {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  for (const auto& n : nodes_of(g)) {
    bool outside = n == "host" || n == "world" || !g.workloads().count(n);
    out += fmt::format("  \"{}\"{};\n", n, outside ? " [shape=ellipse, style=dashed]" : "");
  }
  for (const auto& [k, e] : g.edges()) {
    const char* style = e.state == EdgeState::denied     ? ", color=red, style=dashed"
                        : e.state == EdgeState::approved ? ", color=blue"
                                                         : "";
    out += fmt::format("  \"{}\" -> \"{}\" [label=\"{}\"{}];\n", k.src, k.dst, label(k), style);
  }
  out += "}\n";
  return out;
}

std::string export_mermaid(const Graph& g) {
  std::string out = "flowchart LR\n";
  std::map<std::string, std::string> ids;
  for (const auto& n : nodes_of(g)) {
    auto id = fmt::format("n{}", ids.size());
    ids[n] = id;
    out += fmt::format("  {}[\"{}\"]\n", id, n);
  }
  for (const auto& [k, e] : g.edges()) {
    const char* arrow = e.state == EdgeState::denied ? "-. " : "-- ";
    const char* tail = e.state == EdgeState::denied ? " .->" : " -->";
    out += fmt::format("  {} {}\"{} ({})\"{} {}\n", ids[k.src], arrow, label(k), to_string(e.state), tail, ids[k.dst]);
  }
  return out;
}

std::string export_networkpolicy(const Graph& g, const std::string& label_key) {
  std::set<std::string> workloads;
  for (const auto& [name, rec] : g.workloads()) workloads.insert(name);
  for (const auto& [k, e] : g.edges()) {
    if (k.src != "host" && k.src != "world") workloads.insert(k.src);
    if (k.dst != "host" && k.dst != "world") workloads.insert(k.dst);
  }
  auto peer = [&](const std::string& name) -> std::string {
    if (name == "world") return "    - ipBlock: {cidr: 0.0.0.0/0}\n    - ipBlock: {cidr: ::/0}\n";
    return fmt::format("    - podSelector:\n        matchLabels: {{\"{}\": \"{}\"}}\n", label_key, name);
  };
  auto port = [](const EdgeKey& k) -> std::string {
    if (is_icmp(k.proto)) return "";  // NetworkPolicy has no ICMP
    std::string p = k.proto == Proto::tcp ? "TCP" : k.proto == Proto::udp ? "UDP" : "SCTP";
    return fmt::format("    ports:\n    - {{protocol: {}, port: {}}}\n", p, k.port);
  };
  std::string out;
  for (const auto& w : workloads) {
    std::string ingress, egress;
    for (const auto& [k, e] : g.edges()) {
      if (e.state == EdgeState::denied || k.src == "host" || k.dst == "host") continue;
      if (k.dst == w) ingress += "  - from:\n" + peer(k.src) + port(k);
      if (k.src == w) egress += "  - to:\n" + peer(k.dst) + port(k);
    }
    out += fmt::format(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: topowall-{}\n"
        "  labels: {{app.kubernetes.io/managed-by: topowall}}\nspec:\n  podSelector:\n    matchLabels: {{\"{}\": \"{}\"}}\n"
        "  policyTypes: [Ingress, Egress]\n  ingress:{}\n  egress:{}\n",
        w, label_key, w, ingress.empty() ? " []" : "\n" + ingress.substr(0, ingress.size() - 1),
        egress.empty() ? " []" : "\n" + egress.substr(0, egress.size() - 1));
  }
  return out;
}

}  // namespace topowall::topology
