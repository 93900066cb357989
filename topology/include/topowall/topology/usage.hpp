// Edge use: when traffic last crossed each edge, and which edges have gone unused long enough to prune.
// The agent stamps `last_used` from the flows conntrack reports (every mode, enforce included: a flow the
// kernel let through is a flow the edge carried); time is passed in.
#pragma once

#include <chrono>
#include <vector>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

// The last time the edge carried traffic: last_used, else (a graph from before it was tracked) last_seen,
// else first_seen (an approved edge never used counts from its approval).
TimePoint last_use(const EdgeInfo& e);

// Stamps the edge's use at `now`; false when the graph has no such edge.
bool note_used(Graph& g, const EdgeKey& k, TimePoint now);

// Unused for at least `unused_for` at `now`. Denied edges are never stale: they allow nothing to prune.
bool is_stale(const EdgeInfo& e, TimePoint now, std::chrono::seconds unused_for);

struct StaleEdge {
  EdgeKey key;
  EdgeState state = EdgeState::learned;
  TimePoint last_use{};
};
// The stale edges, least recently used first.
std::vector<StaleEdge> stale_edges(const Graph& g, TimePoint now, std::chrono::seconds unused_for);

}  // namespace topowall::topology
