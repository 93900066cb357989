// Human-facing renderings of the graph.
#pragma once

#include <string>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

std::string export_dot(const Graph& g);
std::string export_mermaid(const Graph& g);
// Kubernetes NetworkPolicy YAML, one policy per workload, selecting pods by
// `label_key: <workload>`; `world` becomes 0.0.0.0/0 and ::/0, `host` is skipped
// (NetworkPolicy cannot name the node). Denied edges are left out.
std::string export_networkpolicy(const Graph& g, const std::string& label_key);

}  // namespace topowall::topology
