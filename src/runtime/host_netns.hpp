#pragma once
// Whether a container's network namespace is the agent's own, which is the node's: a container or pod
// there is host-network whatever its runtime says, and its addresses are the node's (`host`).
#include <sys/stat.h>

#include <string>

namespace topowall::runtime {

inline bool is_own_netns(const std::string& path) {
  struct stat ns{}, own{};
  return !path.empty() && ::stat(path.c_str(), &ns) == 0 && ::stat("/proc/self/ns/net", &own) == 0 &&
         ns.st_dev == own.st_dev && ns.st_ino == own.st_ino;
}

}  // namespace topowall::runtime
