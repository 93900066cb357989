// How a container or namespace maps to a workload name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "topowall/workload.hpp"

namespace topowall::topology {

struct IdentityConfig {
  // First present label wins; then the image repository name; then the name.
  std::vector<std::string> labels{"app", "app.kubernetes.io/name"};
  // Reserved besides `host` and `world`: the --external-network names (the agent fills this in).
  std::vector<std::string> reserved;
};

inline constexpr std::string_view kHost = "host";
inline constexpr std::string_view kWorld = "world";
inline constexpr std::size_t kMaxNameLength = 63;

// A plain name is [A-Za-z0-9][A-Za-z0-9._-]{0,62}: safe in rules, files and logs. Nodes, external
// networks, `host` and `world` have plain names.
bool is_plain_name(std::string_view name);
// A Kubernetes namespace: a DNS label, [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?.
bool is_namespace_name(std::string_view name);
// A workload name: a plain name, or `<namespace>/<plain name>` for a Kubernetes pod (exactly one '/').
bool is_valid_name(std::string_view name);
// The namespace of `<namespace>/<name>`; "" for a plain name.
std::string_view name_namespace(std::string_view name);
// Map arbitrary text onto a plain name (invalid characters, '/' too, become '-'); "" stays "".
std::string sanitize_name(std::string_view text);
// "docker.io/library/nginx:1.25@sha256:..." -> "nginx".
std::string image_repository_name(std::string_view image);
// `host`, `world` or one of cfg.reserved: names no container, namespace or other node may take.
bool is_reserved_name(std::string_view name, const IdentityConfig& cfg = {});
// A name picked from labels, image or name; never a reserved one (that becomes "workload-<name>").
// A pod (ep.pod_namespace set) is `<namespace>/<app>`: the app from the labels, else the owner's name
// (Deployment, StatefulSet, DaemonSet conventions), else the pod name without its generated suffix. Label
// values and names are sanitised to plain names, so no label can say '/' and speak for another namespace.
std::string workload_identity(const EndpointInfo& ep, const IdentityConfig& cfg);
// The `<namespace>/<app>` of a pod (workload_identity for an endpoint with pod_namespace).
std::string pod_identity(const EndpointInfo& ep, const IdentityConfig& cfg);

}  // namespace topowall::topology
