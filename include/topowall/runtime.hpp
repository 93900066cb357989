// Container discovery: the runtime API in the agent, a fake in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "topowall/workload.hpp"

namespace topowall {

struct DiscoveryEvent {
  enum class Kind { upsert, remove, synced } kind = Kind::upsert;
  EndpointInfo info;  // upsert
  std::string id;     // remove
  // When the runtime's event reached the agent (for the event-to-enforced latency).
  std::chrono::steady_clock::time_point seen{};
};

struct DiscoveryStats {
  std::uint64_t events = 0;
  std::uint64_t inspects = 0;
  std::uint64_t errors = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t host_network = 0;  // containers in the node's network namespace, never endpoints
  bool connected = false;
};

using DiscoveryHandler = std::function<void(const DiscoveryEvent&)>;

class Discovery {
 public:
  virtual ~Discovery() = default;
  // Lists what exists now (then `synced`), then follows changes as they happen.
  virtual void start(DiscoveryHandler handler) = 0;
  virtual void stop() = 0;
  virtual DiscoveryStats stats() const = 0;
};

}  // namespace topowall
