// The radar's model: what the map page (/radar, `topology export --format html`) draws, as one JSON
// document. Pure: built from the graph, the live endpoints and the modes, with the time passed in.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/learner.hpp"

namespace topowall::topology {

inline constexpr int kRadarVersion = 1;

// A pending flow that a blocked packet hit this recently is drawn as "blocked", not just "pending".
inline constexpr std::chrono::minutes kRecentlyBlocked{5};

struct RadarInput {
  const Graph& graph;
  const EndpointTable* live = nullptr;  // null: an offline graph (no replicas, no addresses)
  const ModeTable* modes = nullptr;     // null: modes unknown
  // Recent alerts, newest last, as alert_to_json writes them (each with "time").
  nlohmann::json alerts = nlohmann::json::array();
  TimePoint now{};
};

// The island (group) a workload is drawn in: the namespace of a namespace-scoped name (`<ns>/<app>`),
// else its namespace label (first of kNamespaceLabels), else the network of its first address (IPv4 /24,
// IPv6 /64), else "workloads". Outside nodes: "outside".
[[nodiscard]] std::string island_of(const std::string& name, const std::map<std::string, std::string>& labels,
                                    const std::vector<IpAddr>& addresses);

// {"version", "generated", "mode", "islands":[{id,kind}], "nodes":[...], "edges":[...], "alerts":[...]};
// docs/PROTOCOL.md, "Radar".
[[nodiscard]] nlohmann::json radar_model(const RadarInput& in);

// `json` as text safe inside an HTML <script type="application/json"> element: '<', '>' and '&'
// (only ever inside JSON strings) become \u escapes, so no "</script>" or "<!--" can appear.
[[nodiscard]] std::string json_for_html(const nlohmann::json& j);

}  // namespace topowall::topology
