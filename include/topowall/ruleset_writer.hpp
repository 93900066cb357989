// Programs a compiled ruleset into the kernel (nftables in the agent, a fake in tests).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "topowall/result.hpp"
#include "topowall/topology/ruleset.hpp"

namespace topowall {

struct ApplyReport {
  bool full = false;           // the table was (re)created
  std::size_t changes = 0;     // element deletions + additions
  bool reconciled = false;     // compared against what the kernel held
};

struct WriterStats {
  std::uint64_t applies = 0;
  std::uint64_t full_applies = 0;
  std::uint64_t element_changes = 0;
  std::uint64_t errors = 0;
  std::uint64_t noop_applies = 0;
  // New connections judged without dispatch because another component had
  // already set their conntrack mark (the kernel's counter in `check`).
  std::uint64_t ctmark_taken = 0;
};

// How often one allowed edge's kernel element matched since it was added (its counter): a new connection
// across the edge, or a retransmission of its first packet. Edge use without conntrack events.
struct AllowUse {
  topology::AllowKey key;
  std::uint64_t packets = 0;
};

class RulesetWriter {
 public:
  virtual ~RulesetWriter() = default;
  // Make the kernel match `model`: the first call reconciles with what the
  // kernel already holds; later calls change only what differs.
  [[nodiscard]] virtual Result<ApplyReport> apply(const topology::RulesetModel& model) = 0;
  // The same, when only these addresses and allowed edges changed since the
  // last apply: costs O(changes) instead of O(ruleset).
  [[nodiscard]] virtual Result<ApplyReport> apply_patch(const topology::RulesetModel& model, const std::vector<IpAddr>& addrs,
                                          const std::vector<topology::AllowKey>& keys) {
    (void)addrs;
    (void)keys;
    return apply(model);
  }
  // Remove the table (uninstall).
  [[nodiscard]] virtual Status remove() = 0;
  virtual WriterStats stats() const = 0;
  // Forget what was applied: the next apply reconciles with the kernel (someone else changed it).
  virtual void invalidate() {}
  // Whether the ruleset generation moved since our last commit (cheap; the backstop for lost notices).
  [[nodiscard]] virtual Result<bool> changed_since_commit() { return false; }
  // Whether the kernel still holds exactly what was last applied for `model` (a full read-back: only
  // when change notices may have been lost).
  [[nodiscard]] virtual Result<bool> intact(const topology::RulesetModel& model) {
    (void)model;
    return true;
  }
  // The ruleset generation now is one our tables are right in (another component changed its own).
  virtual void acknowledge() {}
  // Every allowed edge's match count, read from the kernel (none from a writer that keeps no counters).
  [[nodiscard]] virtual Result<std::vector<AllowUse>> allow_use() { return std::vector<AllowUse>{}; }
};

// Reports changes to the owned tables made by anyone else (a table deleted or flushed by hand).
class RulesetWatch {
 public:
  virtual ~RulesetWatch() = default;
  [[nodiscard]] virtual Status start(std::function<void(const std::string& why)> on_change) = 0;
  virtual void stop() = 0;
  // Notices the kernel could not deliver (ENOBUFS): while this does not move, every change was seen.
  virtual std::uint64_t losses() const = 0;
};

}  // namespace topowall
