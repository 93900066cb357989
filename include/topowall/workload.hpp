// What discovery knows about one container or named network namespace.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "topowall/types.hpp"

namespace topowall {

enum class EndpointKind { container, netns };

struct EndpointInfo {
  EndpointKind kind = EndpointKind::container;
  std::string id;     // container id, or "netns:<name>"
  std::string name;   // container name or netns name
  std::string image;  // empty for named namespaces
  std::map<std::string, std::string> labels;
  // Kubernetes pods (discovered through CRI): the pod's namespace, which scopes its identity. Empty for
  // containers and named namespaces outside Kubernetes.
  std::string pod_namespace;
  std::string netns_path;  // /run/netns/..., /proc/<pid>/ns/net, or empty
  int pid = 0;
  std::vector<IpAddr> addresses;
  // Address -> ifindex of the host-side interface it sits behind (the peer of the container's veth), as
  // read from the namespace: the anti-spoofing guard lets that port send from that address only.
  std::map<IpAddr, std::uint32_t> ports;
};

}  // namespace topowall
