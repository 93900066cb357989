// What the flows did, kept for operators: each edge's last use (for `edges stale|prune`) and the flow
// journal (for `replay`). Fed from the agent's flow path: conntrack's flows (which the kernel let through,
// in every mode) and the log's blocked packets.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/flow_journal.hpp"
#include "agent/policy_service.hpp"
#include "topowall/time_source.hpp"
#include "topowall/topology/journal.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::agent {

struct HistoryConfig {
  std::string journal_path;                    // "" = no journal (replay answers that it is off)
  std::uint64_t journal_max_bytes = 64 << 20;  // --journal-max-bytes
  std::uint64_t max_import_bytes = 64 << 20;   // a graph FILE passed to replay, at most
};

class FlowHistory {
 public:
  static constexpr std::size_t kMaxListed = 5000;  // edges per answer list: an answer line stays well under 4 MiB

  FlowHistory(const HistoryConfig& cfg, topology::State& state, const TimeSource& time);

  // Opens the journal (a failure is logged and counted: the firewall runs on without it).
  void open();
  // A flow conntrack reported for edge `k` (the kernel let it through). `resync`: an entry of a dump, an
  // open connection: it refreshes the edge's use but is not a new flow for the journal.
  void on_flow(const topology::EdgeKey& k, bool resync);
  void on_blocked(const topology::EdgeKey& k, TimePoint when);  // a packet the ruleset dropped
  // `n` connections an edge allowed, counted by the kernel (agent/edge_use.hpp): use and journal alike.
  void on_used(const topology::EdgeKey& k, std::uint64_t n);
  // Closed minutes to disk (every tick); everything at stop.
  void flush(bool everything = false);

  // Control methods. Prune runs `refresh` (a conntrack dump) first, so edges carrying long-lived connections (no
  // new flow for weeks) count as used; `remove` revokes one edge as `edges remove` does.
  void set_refresh(std::function<void()> f) { refresh_ = std::move(f); }
  void set_remove(std::function<Reply(const topology::EdgeKey&)> f) { remove_ = std::move(f); }
  nlohmann::json stale(const nlohmann::json& params);
  Reply prune(const nlohmann::json& params);
  nlohmann::json replay(const nlohmann::json& params, int passed_fd);

  const JournalCounters& journal_counters() const;
  std::uint64_t journal_bytes() const { return journal_ ? journal_->bytes() : 0; }
  bool journal_open() const { return journal_ != nullptr; }

 private:
  std::optional<topology::Graph> replay_graph(const nlohmann::json& params, int passed_fd, nlohmann::json& refusal) const;

  const HistoryConfig& cfg_;
  topology::State& state_;
  const TimeSource& time_;
  std::unique_ptr<FlowJournal> journal_;
  topology::FlowBuckets buckets_;
  std::function<void()> refresh_ = [] {};
  std::function<Reply(const topology::EdgeKey&)> remove_;
  JournalCounters failed_open_;  // counts when there is no journal to count
};

}  // namespace topowall::agent
