// Docker Engine API documents -> endpoint info (pure).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "topowall/result.hpp"
#include "topowall/workload.hpp"

namespace topowall::runtime {

// GET /containers/{id}/json -> endpoint. Errors name the missing field.
Result<EndpointInfo> parse_inspect(const nlohmann::json& j);

struct ContainerEvent {
  enum class Action { start, stop, other } action = Action::other;
  std::string id;
};
// One line of GET /events.
std::optional<ContainerEvent> parse_event(const nlohmann::json& j);

}  // namespace topowall::runtime
