// Address -> workload resolution for the node's current endpoints.
#pragma once

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
  // workload -> endpoint ids (the replicas).
  const std::map<std::string, std::vector<std::string>>& workloads() const { return by_workload_; }
  // address -> workload for every endpoint address (what the compiler consumes).
  std::map<IpAddr, std::string> address_map() const;
  const std::vector<IpAddr>& host_addresses() const { return host_; }
  const std::vector<NamedNetwork>& external_networks() const { return external_; }

 private:
  void index_remove(const std::string& id);

  std::map<std::string, Endpoint> endpoints_;             // id -> endpoint
  std::map<IpAddr, std::string> owner_;                   // address -> endpoint id
  std::map<std::string, std::vector<std::string>> by_workload_;
  // host-side port -> its endpoint and workload: a hash lookup for every packet the guard logs (a
  // spoofing container can make that many), never a walk over the endpoints.
  struct PortOwner {
    std::string id, workload;
  };
  std::unordered_map<std::uint32_t, PortOwner> port_owner_;
  std::vector<IpAddr> host_;
  std::vector<NamedNetwork> external_;
};

}  // namespace topowall::topology
