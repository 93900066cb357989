// The persisted state and the graph exchange format (versioned JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "topowall/cluster.hpp"
#include "topowall/result.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/learner.hpp"
#include "topowall/topology/ruleset.hpp"

namespace topowall::topology {

inline constexpr int kGraphVersion = 1;
inline constexpr int kStateVersion = 1;

std::string format_time(TimePoint t);  // RFC 3339, UTC, millisecond precision
// Years kMinYear-kMaxYear only: any such time, and its distance from now, fits the clock's nanoseconds.
inline constexpr int kMinYear = 1970, kMaxYear = 2200;
std::optional<TimePoint> parse_time(std::string_view text);

struct State {
  ModeTable modes;
  std::optional<TimePoint> learn_until;
  std::map<std::string, TimePoint> workload_learn_until;  // per-workload learning windows
  Graph graph;
  IdTable ids;
  // Cluster mode: other nodes' endpoints as last read from etcd, so that a restarted agent enforces them
  // (never `world`) until etcd has been read again.
  std::vector<ClusterEndpoint> remote_endpoints;
  bool operator==(const State&) const = default;
};

// The export format: {"version", "workloads":[...], "edges":[...]}. With live
// endpoints, each workload also lists its current replica count.
nlohmann::json graph_to_json(const Graph& g, const EndpointTable* live = nullptr);
// One element of the export's "workloads" (a name from the graph or the live endpoints) and "edges".
nlohmann::json workload_to_json(const std::string& name, const Graph& g, const EndpointTable* live);
nlohmann::json edge_to_json(const EdgeKey& k, const EdgeInfo& e);
// Strict: unknown fields, wrong types, invalid names or duplicates are errors
// that name the offending field.
Result<Graph> graph_from_json(const nlohmann::json& j);

nlohmann::json state_to_json(const State& s);
// The same value as state_to_json(s), as text, written without building the edges as a JSON value
// (for 100k edges that took most of an import's time and memory).
std::string state_to_text(const State& s);
// The same with the remote endpoints given apart (s.remote_endpoints is ignored): the agent's are in its
// registry, and copying 100k of them into the state every save cost as much as writing them.
std::string state_to_text(const State& s, const std::vector<const ClusterEndpoint*>& remote);
Result<State> state_from_json(const nlohmann::json& j);

nlohmann::json pending_to_json(const Graph& g);

}  // namespace topowall::topology
