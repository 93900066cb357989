// The workload-to-workload graph: learned, approved and denied edges, plus
// pending flows seen outside it.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "topowall/topology/edge_map.hpp"
#include "topowall/types.hpp"

namespace topowall::topology {

struct PendingFlow {
  std::uint64_t id = 0;
  std::uint64_t count = 0;
  TimePoint first_seen{};
  TimePoint last_seen{};
  // Why a flow seen while learning waits for review instead of being learned: "scan" or "fan-out" (its
  // source was quarantined), "world" (from outside into a workload). Empty: seen outside learning.
  std::string reason;
  bool operator==(const PendingFlow&) const = default;
};

// How many flows outside the graph are kept: a port scan must not grow the table (nor the state file)
// without end. A limit of 0 counts as 1.
struct PendingLimits {
  std::size_t per_source = 1000;  // per source workload (or host, world, network)
  std::size_t total = 20000;
};

struct PendingObserved {
  bool inserted = false;    // a new pending flow
  std::size_t evicted = 0;  // flows evicted to make room for it
};

struct WorkloadRecord {
  std::map<std::string, std::string> labels;
  TimePoint first_seen{};
  bool operator==(const WorkloadRecord&) const = default;
};

class Graph {
 public:
  // Record a sighting; returns true when the edge is new.
  bool observe(const EdgeKey& key, TimePoint now, std::uint64_t count = 1,
               EdgeState state = EdgeState::learned);
  // Record a flow outside the graph. A new flow that would exceed `limits` first evicts the least recently
  // seen pending flow of its own source, or the least recently seen of all when its source has none.
  // A reason, once given, stays with the flow.
  [[nodiscard]] PendingObserved observe_pending(const EdgeKey& key, TimePoint now, const PendingLimits& limits,
                                                std::uint64_t count = 1, const std::string& reason = {});
  // Evict (least recently seen first, as above) until the table is within `limits`; returns how many.
  [[nodiscard]] std::size_t bound_pending(const PendingLimits& limits);
  // Remove a pending flow (settled by an operator), returning it.
  [[nodiscard]] std::optional<PendingFlow> take_pending(const EdgeKey& key);
  // Put back a pending flow as it was (loaded, kept across an import); not bounded: see bound_pending.
  void restore_pending(const EdgeKey& key, const PendingFlow& flow);
  void note_workload(const std::string& name, const std::map<std::string, std::string>& labels,
                     TimePoint now);

  // The edge as it stands (a copy: edges are packed, see edge_map.hpp), or nullopt.
  std::optional<EdgeInfo> find(const EdgeKey& key) const { return edges_.get(key); }
  bool erase(const EdgeKey& key) { return edges_.erase(key); }

  const EdgeMap& edges() const { return edges_; }
  EdgeMap& edges() { return edges_; }
  // Changed only through the functions above, which keep the eviction index in step.
  const std::map<EdgeKey, PendingFlow>& pending() const { return pending_; }
  const std::map<std::string, WorkloadRecord>& workloads() const { return workloads_; }
  std::map<std::string, WorkloadRecord>& workloads() { return workloads_; }
  std::uint64_t next_pending_id() const { return next_pending_id_; }
  void set_next_pending_id(std::uint64_t v) { next_pending_id_ = v; }

  // The index is derived from the pending flows, so it takes no part.
  bool operator==(const Graph& o) const {
    return edges_ == o.edges_ && pending_ == o.pending_ && workloads_ == o.workloads_ &&
           next_pending_id_ == o.next_pending_id_;
  }

 private:
  using Seen = std::set<std::pair<TimePoint, EdgeKey>>;  // least recently seen first
  void index(const EdgeKey& key, TimePoint last_seen);
  void unindex(const EdgeKey& key, TimePoint last_seen);
  bool evict_oldest_of(const std::string& src);  // that source's least recently seen pending flow
  bool evict_oldest();                           // the least recently seen of all

  EdgeMap edges_;
  std::map<EdgeKey, PendingFlow> pending_;
  std::map<std::string, Seen> pending_by_src_;  // pending flows per source, for eviction in O(log n)
  std::map<std::string, WorkloadRecord> workloads_;
  std::uint64_t next_pending_id_ = 1;
};

}  // namespace topowall::topology
