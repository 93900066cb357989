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

}  // namespace topowall::topology
