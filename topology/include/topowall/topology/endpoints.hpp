// Address -> workload resolution for the node's current endpoints.
#pragma once

#include <absl/container/btree_map.h>

#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "topowall/types.hpp"
#include "topowall/workload.hpp"

namespace topowall::topology {

struct Endpoint {
  std::string workload;
  EndpointInfo info;
};

struct NamedNetwork {
  Cidr cidr;
  std::string name;
};

class EndpointTable {
 public:
  // Insert or replace an endpoint; returns the addresses whose owner changed.
  std::vector<IpAddr> upsert(const std::string& workload, EndpointInfo info);
  // Remove an endpoint by id; returns the addresses it no longer owns.
  std::vector<IpAddr> remove(const std::string& id);

  void set_host_addresses(std::vector<IpAddr> addrs);
  void set_external_networks(std::vector<NamedNetwork> nets);

  // Workload name, "host", a named external network, or "world".
  std::string resolve(const IpAddr& ip) const;
  // The workload owning an address, or "" when no endpoint holds it.
  const std::string& workload_of(const IpAddr& ip) const;
  // The id of the endpoint holding an address, or "".
  const std::string& owner_of(const IpAddr& ip) const;
  // The workload whose container sits behind this host-side port (interface index), or "".
  const std::string& workload_at_port(std::uint32_t ifindex) const;
  bool is_workload(const std::string& name) const { return by_workload_.count(name) > 0; }

  const Endpoint* find(const std::string& id) const;
  const std::map<std::string, Endpoint>& endpoints() const { return endpoints_; }
  // workload -> its endpoints (the replicas), in the order they came.
  const std::map<std::string, std::vector<const Endpoint*>>& workloads() const { return by_workload_; }
  // address -> workload for every endpoint address (what the compiler consumes).
  std::map<IpAddr, std::string> address_map() const;
  const std::vector<IpAddr>& host_addresses() const { return host_; }
  const std::vector<NamedNetwork>& external_networks() const { return external_; }

 private:
  using Entry = std::map<std::string, Endpoint>::value_type;  // an id and its endpoint
  void index_remove(const Entry& e);

  // The indexes point at the entries of endpoints_ (a map's entries never move), so that the 64-character
  // container id is held once, not once per index: at 100k endpoints that was about 300 bytes each.
  std::map<std::string, Endpoint> endpoints_;  // id -> endpoint
  absl::btree_map<IpAddr, const Entry*> owner_;  // address -> the endpoint holding it
  std::map<std::string, std::vector<const Endpoint*>> by_workload_;
  // host-side port -> its endpoint: a hash lookup for every packet the guard logs (a spoofing container
  // can make that many), never a walk over the endpoints.
  std::unordered_map<std::uint32_t, const Entry*> port_owner_;
  std::vector<IpAddr> host_;
  std::vector<NamedNetwork> external_;
};

}  // namespace topowall::topology
