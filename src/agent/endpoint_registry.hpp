// The endpoint registry: raw discovery records (the runtime's API, named namespaces, addresses read
// inside each namespace, other nodes' endpoints) merged into the endpoint table the core judges by.
// Its rules: a container's namespace shadows the same named namespace; an address the runtime gave one
// endpoint is never taken by another's namespace; what this node discovered wins over a remote claim.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "topowall/address_watcher.hpp"
#include "topowall/cluster.hpp"
#include "topowall/runtime.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/identity.hpp"

namespace topowall::agent {

struct RegistryCounters {
  std::uint64_t upserts = 0;
  std::uint64_t removes = 0;
  std::uint64_t claims_refused = 0;  // a namespace showing an address the runtime gave another
  std::uint64_t handler_errors = 0;
};

// What the registry tells the rest of the agent.
struct RegistryHooks {
  std::function<void(const std::vector<IpAddr>&)> changed = [](const auto&) {};  // these addresses changed owner
  // A workload has an endpoint (labels: from discovery; null for another node's).
  std::function<void(const std::string&, const std::map<std::string, std::string>*)> workload_seen = [](const auto&, const auto*) {};
  std::function<void()> before_remove = [] {};  // an endpoint is about to go: learn what it can still name
  std::function<void()> resolvable = [] {};     // an endpoint came or changed: held flows may resolve now
  std::function<void()> synced = [] {};          // a discovery source listed everything it has
  std::function<void(std::chrono::steady_clock::time_point)> event_seen = [](auto) {};
};

class EndpointRegistry {
 public:
  enum class Source { runtime, netns };

  // `addresses` and `cluster` may be null.
  EndpointRegistry(topology::EndpointTable& table, const topology::IdentityConfig& identity, AddressWatcher* addresses,
                   ClusterStore* cluster);
  void set_hooks(RegistryHooks hooks) { hooks_ = std::move(hooks); }
  // A source that does not run counts as synced.
  void expect(Source s) { (s == Source::runtime ? runtime_synced_ : netns_synced_) = false; }

  void on_discovery(const DiscoveryEvent& ev, Source src);  // never throws
  void on_cluster(const ClusterEvent& ev);                   // endpoints only; never throws
  // Other nodes' endpoints as last known (the state file): in force until the cluster has been read
  // again, then dropped unless announced again, so that a restart with etcd away never makes them `world`.
  void restore(const std::vector<ClusterEndpoint>& saved);
  // What other nodes announced, for the state file (pointers into the registry, valid until its next change).
  std::vector<const ClusterEndpoint*> remote_endpoints() const;

  bool synced() const { return runtime_synced_ && netns_synced_; }
  bool cluster_synced() const { return cluster_synced_; }
  std::size_t remote_count() const { return remote_.size(); }
  const RegistryCounters& counters() const { return counters_; }

 private:
  struct Raw {
    EndpointInfo info;                      // as discovery reported it
    std::vector<IpAddr> in_netns;           // as rtnetlink reports it
    std::map<IpAddr, std::uint32_t> ports;  // address -> host-side port
    Source source = Source::runtime;
    std::uint64_t ns_inode = 0;
  };
  void upsert(const DiscoveryEvent& ev, Source src);
  void on_addresses(const std::string& id, const AddressSnapshot& snap);
  void apply(const std::string& id);
  void remove(const std::string& id);
  void drop_local(const std::string& id);  // out of the table, out of the cluster, remote claims re-applied
  void apply_remote(const std::string& id);
  void drop_remote(const std::string& id);
  void on_cluster_synced();
  bool shadowed(const std::string& id) const;
  bool assigned_elsewhere(const std::string& id, const IpAddr& a);

  topology::EndpointTable& table_;
  const topology::IdentityConfig& identity_;
  AddressWatcher* addresses_;
  ClusterStore* cluster_;
  RegistryHooks hooks_;
  std::map<std::string, Raw> raw_;
  std::map<std::string, ClusterEndpoint> remote_;  // "cluster:<node>/<id>" -> as its node announced it
  std::set<std::pair<std::string, IpAddr>> refused_claims_;  // logged once each
  std::set<std::string> restored_;                           // from the state, not announced again yet
  bool runtime_synced_ = true, netns_synced_ = true, cluster_synced_ = false;
  RegistryCounters counters_;
};

}  // namespace topowall::agent
