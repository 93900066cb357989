// Human-facing renderings of the graph.
#pragma once

#include <string>

#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"

namespace topowall::topology {

std::string export_dot(const Graph& g);
std::string export_mermaid(const Graph& g);
// Kubernetes NetworkPolicy YAML, one policy per workload, selecting pods by `label_key: <app>`; a
// namespaced workload `<ns>/<app>` gets its policy in `<ns>`, and peers in other namespaces are
// selected in theirs (namespaceSelector on kubernetes.io/metadata.name). `world` and the named
// networks become ipBlocks, `host` is skipped (NetworkPolicy cannot name the node), and so are
// ICMP edges (a rule without ports would allow every port). Denied edges are left out.
std::string export_networkpolicy(const Graph& g, const std::string& label_key, const std::vector<NamedNetwork>& networks = {});

}  // namespace topowall::topology
