// Addresses inside a namespace, now and whenever they change.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "topowall/types.hpp"

namespace topowall {

struct AddressSnapshot {
  std::vector<IpAddr> addrs;  // usable (global) addresses
  // Address -> the host-side port it sits behind (the veth peer in the agent's namespace), for the
  // anti-spoofing guard; absent for addresses on other kinds of interface.
  std::map<IpAddr, std::uint32_t> ports;
};

using AddressCallback = std::function<void(const AddressSnapshot&)>;

class AddressWatcher {
 public:
  virtual ~AddressWatcher() = default;
  // Reports the current addresses at once, then again after every change.
  // netns_path "" means the agent's own (the host) namespace.
  virtual void watch(const std::string& id, const std::string& netns_path, AddressCallback cb) = 0;
  virtual void unwatch(const std::string& id) = 0;
};

}  // namespace topowall
