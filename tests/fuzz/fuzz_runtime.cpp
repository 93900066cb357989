// The container runtime's API answers (docker and podman): the body of GET /containers/{id}/json, of
// GET /containers/json and one line of GET /events, each parsed as DockerClient parses them
// (topology::parse_json, bounded nesting). The same document goes through every decoder: an answer of
// the wrong shape for its request is exactly what a hostile or broken runtime would send.
#include "fuzz_support.hpp"
#include "runtime/docker_json.hpp"
#include "topowall/topology/json_limits.hpp"

using namespace topowall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto j = topology::parse_json(fuzz::as_text(data, size));
  if (!j) return 0;
  (void)runtime::shares_host_network(*j);
  (void)runtime::is_running(*j);
  if (auto ep = runtime::parse_inspect(*j)) {
    for (const auto& a : ep->addresses)
      if (a.family != AF_INET && a.family != AF_INET6) __builtin_trap();
  }
  (void)runtime::parse_event(*j);
  (void)runtime::container_ids(*j);
  return 0;
}
