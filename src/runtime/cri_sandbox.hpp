// CRI pod sandboxes as endpoints: what one verbose PodSandboxStatus answer says about a pod, and the diff
// of complete listings into discovery events. No I/O here: the gRPC calls are in cri_rpc, the threads in
// cri_client; this part is tested with recorded answers.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "topowall/result.hpp"
#include "topowall/runtime.hpp"

namespace topowall::runtime {

// One ready pod sandbox. The pod's containers join its network namespace, so the pod is the endpoint.
struct Sandbox {
  EndpointInfo info;          // id: the sandbox id; name, pod_namespace, labels: its metadata
  bool host_network = false;  // the node's network namespace: `host`, never an endpoint
};

// What the runtime's verbose `info` tells beyond the CRI status: the pause process and the network
// namespace's path (containerd and CRI-O both put their OCI runtime spec there).
struct VerboseInfo {
  std::string netns_path;
  int pid = 0;
};
[[nodiscard]] VerboseInfo parse_verbose_info(const std::map<std::string, std::string>& info);

// The endpoints last reported, and the events that turn them into a new complete listing.
class SandboxSet {
 public:
  // `now`: every ready sandbox. Upserts the new and the changed (stamped `seen`), removes the vanished,
  // counts host-network pods once, and reports `synced` after the first listing.
  void apply(const std::vector<Sandbox>& now, std::chrono::steady_clock::time_point seen,
             const DiscoveryHandler& handler, DiscoveryStats& stats);
  const std::map<std::string, EndpointInfo>& known() const { return known_; }

 private:
  std::map<std::string, EndpointInfo> known_;
  std::set<std::string> host_;
  bool synced_ = false;
};

}  // namespace topowall::runtime
