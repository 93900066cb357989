// The workload-to-workload graph: learned, approved and denied edges, plus
// pending flows seen outside it.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "topowall/types.hpp"

namespace topowall::topology {

enum class EdgeState { learned, approved, denied };
std::string_view to_string(EdgeState s);
std::optional<EdgeState> parse_edge_state(std::string_view t);

struct EdgeKey {
  std::string src;
  std::string dst;
  Proto proto = Proto::tcp;
  std::uint16_t port = 0;  // destination port, or icmp type for icmp/icmpv6
  auto operator<=>(const EdgeKey&) const = default;
  std::string to_string() const;  // "web -> api tcp/8080"
};

struct EdgeInfo {
  EdgeState state = EdgeState::learned;
  std::uint64_t count = 0;
  TimePoint first_seen{};
  TimePoint last_seen{};
  std::string comment;
  std::optional<TimePoint> expires;
  bool operator==(const EdgeInfo&) const = default;
};

struct PendingFlow {
  std::uint64_t id = 0;
  std::uint64_t count = 0;
  TimePoint first_seen{};
  TimePoint last_seen{};
  bool operator==(const PendingFlow&) const = default;
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
  // Record a flow outside the graph; returns true when the pending entry is new.
  bool observe_pending(const EdgeKey& key, TimePoint now, std::uint64_t count = 1);
  void note_workload(const std::string& name, const std::map<std::string, std::string>& labels,
                     TimePoint now);

  const EdgeInfo* find(const EdgeKey& key) const;
  bool erase(const EdgeKey& key);

  const std::map<EdgeKey, EdgeInfo>& edges() const { return edges_; }
  std::map<EdgeKey, EdgeInfo>& edges() { return edges_; }
  const std::map<EdgeKey, PendingFlow>& pending() const { return pending_; }
  std::map<EdgeKey, PendingFlow>& pending() { return pending_; }
  const std::map<std::string, WorkloadRecord>& workloads() const { return workloads_; }
  std::map<std::string, WorkloadRecord>& workloads() { return workloads_; }
  std::uint64_t next_pending_id() const { return next_pending_id_; }
  void set_next_pending_id(std::uint64_t v) { next_pending_id_ = v; }

  bool operator==(const Graph&) const = default;

 private:
  std::map<EdgeKey, EdgeInfo> edges_;
  std::map<EdgeKey, PendingFlow> pending_;
  std::map<std::string, WorkloadRecord> workloads_;
  std::uint64_t next_pending_id_ = 1;
};

}  // namespace topowall::topology
