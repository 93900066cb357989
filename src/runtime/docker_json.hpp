// Docker Engine API documents -> endpoint info (pure).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "topowall/result.hpp"
#include "topowall/workload.hpp"

namespace topowall::runtime {

// GET /containers/{id}/json -> endpoint. Errors name the missing or malformed field; a container
// sharing the node's network namespace is refused too. Never throws.
[[nodiscard]] Result<EndpointInfo> parse_inspect(const nlohmann::json& j);
// State.Running; false when absent or malformed.
bool is_running(const nlohmann::json& inspect);
// Initialised (podman's `init`): not running yet, but its process and network exist.
bool is_initialised(const nlohmann::json& inspect);
// Run with the node's network namespace (docker and podman both report NetworkMode "host"): its
// addresses are the node's, so it is `host` and must never be a workload's endpoint.
bool shares_host_network(const nlohmann::json& inspect);

struct ContainerEvent {
  // init: podman's network is up and the container's process exists, before `start` (about 0.3 s
  // earlier): classifying its port then spares its first packets the unclassified drop.
  enum class Action { init, start, stop, other } action = Action::other;
  std::string id;
};
// One line of GET /events; nullopt for other types, and for an id that could not be a container's.
std::optional<ContainerEvent> parse_event(const nlohmann::json& j);
// GET /containers/json -> the listed containers' ids; entries without a usable Id are skipped.
std::set<std::string> container_ids(const nlohmann::json& list);
// An id goes into the next request's path: 1-128 of A-Z a-z 0-9 _ . - (docker and podman use 64 hex
// digits), never '/', a space or a line break that would change the request.
bool is_valid_container_id(const std::string& id);

}  // namespace topowall::runtime
