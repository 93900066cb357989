// Addresses inside a namespace, now and whenever they change.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "topowall/types.hpp"

namespace topowall {

using AddressCallback = std::function<void(const std::vector<IpAddr>&)>;

class AddressWatcher {
 public:
  virtual ~AddressWatcher() = default;
  // Reports the current addresses at once, then again after every change.
  // netns_path "" means the agent's own (the host) namespace.
  virtual void watch(const std::string& id, const std::string& netns_path, AddressCallback cb) = 0;
  virtual void unwatch(const std::string& id) = 0;
};

}  // namespace topowall
