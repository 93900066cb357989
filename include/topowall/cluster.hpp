// Cluster mode: nodes share which workload owns which address, so a peer on
// another node is named by its identity, not seen as `world`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "topowall/types.hpp"

namespace topowall {

// One endpoint as a node announces it: its workload is decided by the node that runs it.
struct ClusterEndpoint {
  std::string node;
  std::string id;  // the endpoint's id on its node
  std::string workload;
  std::string name;
  std::vector<IpAddr> addresses;
  bool operator==(const ClusterEndpoint&) const = default;
};

// An operator's decision on one edge, made on any node and applied on every node: a cross-node flow
// crosses two nodes' rules, and approving it once must open both.
struct ClusterDecision {
  std::string src, dst;
  Proto proto = Proto::tcp;
  std::uint16_t port = 0;
  std::string state;    // "approved", "denied" or "removed"
  std::string until;    // RFC 3339 expiry of an approval, or ""
  std::string comment;
  std::string node;     // where it was made
};

struct ClusterEvent {
  enum class Kind { upsert, remove, synced, decision } kind = Kind::upsert;
  ClusterEndpoint endpoint;  // remove: node and id only
  ClusterDecision decision;  // decision
};

struct ClusterStats {
  std::uint64_t publishes = 0;   // writes of this node's endpoints
  std::uint64_t events = 0;      // other nodes' changes received
  std::uint64_t errors = 0;      // failed requests (degraded: retried)
  std::uint64_t resyncs = 0;     // full re-reads after a lost watch or lease
  std::uint64_t values_refused = 0;    // values under one node's key naming another node or id (ignored)
  std::uint64_t claims_refused = 0;    // addresses a node claimed outside the ranges it announced (ignored)
  std::uint64_t ranges_refused = 0;    // announced ranges overlapping an earlier node's (refused)
  std::uint64_t decisions_local = 0;   // decisions this node may not write to etcd (no decisions credential)
  bool connected = false;        // lease held and watch running
};

using ClusterHandler = std::function<void(const ClusterEvent&)>;

class ClusterStore {
 public:
  virtual ~ClusterStore() = default;
  // Reads every other node's endpoints (then `synced`), then follows changes.
  virtual void start(ClusterHandler handler) = 0;
  virtual void stop() = 0;
  // This node's endpoint, written now or as soon as the store is reachable.
  virtual void publish(const ClusterEndpoint& e) = 0;
  virtual void withdraw(const std::string& id) = 0;
  // Shares an operator's decision (kept until overwritten: it outlives the node that made it); false when
  // this node may not write decisions (the operator writes them with their own credential).
  virtual bool decide(const ClusterDecision& d) = 0;
  virtual ClusterStats stats() const = 0;
};

}  // namespace topowall
