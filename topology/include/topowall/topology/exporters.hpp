// Human-facing renderings of the graph.
#pragma once

#include <string>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

std::string export_dot(const Graph& g);
std::string export_mermaid(const Graph& g);

}  // namespace topowall::topology
