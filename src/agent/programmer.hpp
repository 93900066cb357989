// The ruleset programmer: turns the agent's state into kernel rules. One job: decide full compile vs
// patch, coalesce a burst of changes into one transaction, retry a failed one with backoff, keep the
// last model the kernel accepted, and sweep conntrack of what lost its permission.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "topowall/ruleset_writer.hpp"
#include "topowall/time_source.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/ruleset.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::agent {

// Deletes the conntrack entries a predicate dooms; returns how many.
using ConntrackDelete = std::function<Result<std::size_t>(const std::function<bool(const FlowTuple&)>&)>;

struct ProgrammerCounters {
  std::uint64_t applies = 0;
  std::uint64_t apply_errors = 0;
  std::uint64_t conntrack_deleted = 0;
  std::uint64_t ids_over_capacity = 0;
  std::uint64_t ids_released = 0;
  std::uint64_t ruleset_repairs = 0;  // our tables changed by someone else, restored
  std::uint64_t ruleset_checks = 0;   // periodic checks that found our tables changed (then repaired)
  std::uint64_t ruleset_read_backs = 0;  // our tables read back and compared (notices lost, or no monitor)
  std::uint64_t handler_errors = 0;
  bool degraded = false;              // the last programming failed; retrying
};

class RulesetProgrammer {
 public:
  // `writer` may be null (learn only: no kernel rules). `state` and `endpoints` are the agent's; the
  // programmer reads them and allocates ids in state.ids.
  RulesetProgrammer(boost::asio::io_context& io, const topology::RulesetConfig& cfg, RulesetWriter* writer,
                    ConntrackDelete conntrack_delete, topology::State& state, const topology::EndpointTable& endpoints);

  // Nothing is programmed until `ready` holds (discovery synced): a restarted agent never takes away
  // what the kernel still enforces. `on_applied` runs after each accepted transaction.
  void set_ready(std::function<bool()> ready) { ready_ = std::move(ready); }
  void set_on_applied(std::function<void()> f) { on_applied_ = std::move(f); }
  // Applies follow a conntrack sweep by at least this much (0: at once), so a burst of address changes
  // shares its sweeps: each one walks the whole conntrack hash table (262,144 buckets, each locked, on a
  // node with a few GiB), whatever few entries it holds.
  void set_sweep_spacing(std::chrono::milliseconds d) { sweep_spacing_ = d; }
  // The clock approvals expire by (the real one unless set).
  void set_time(const TimeSource* t) { time_ = t; }
  // The running change monitor, if any: while it lost nothing, a moved generation is someone else's.
  void set_watch(const RulesetWatch* w) {
    watch_ = w;
    seen_losses_ = w ? w->losses() : 0;
  }

  void touch(const std::vector<IpAddr>& addrs);  // these addresses changed owner
  void touch(const topology::EdgeKey& edge);     // this edge changed
  void request_full();                           // anything else changed (modes, host addresses, ...)
  void apply_now();                              // compile and program now (coalesced otherwise)
  void repair(const std::string& why);           // another process changed our tables
  void check_generation();                       // the periodic backstop for lost change notices
  // Give back ids unused for `hold`; a full compile follows when any were.
  void collect_ids(TimePoint now, std::chrono::seconds hold);
  // A runtime event whose endpoint is waiting to be programmed (for the latency figure).
  void note_event(std::chrono::steady_clock::time_point seen) { awaiting_.push_back(seen); }
  void stop();

  const std::optional<topology::RulesetModel>& applied() const { return last_; }
  // The addresses the last accepted apply patched; none after a full apply (it touched everything).
  const std::optional<std::vector<IpAddr>>& last_patched() const { return last_patched_; }
  bool in_sync() const { return last_.has_value() && !reconcile_; }
  const ProgrammerCounters& counters() const { return counters_; }
  const std::deque<double>& event_to_enforced_ms() const { return event_to_enforced_ms_; }

 private:
  void post();
  void apply_full();
  void apply_patch();
  void sweep_moved(const std::set<IpAddr>& moved);
  void accepted();
  void failed(const Error& e);
  void sweep(const std::function<bool(const FlowTuple&)>& doomed);
  topology::CompileInput input() const;

  boost::asio::io_context& io_;
  const topology::RulesetConfig& cfg_;
  RulesetWriter* writer_;
  const RulesetWatch* watch_ = nullptr;
  const TimeSource* time_ = nullptr;
  std::uint64_t seen_losses_ = 0;
  ConntrackDelete conntrack_delete_;
  topology::State& state_;
  const topology::EndpointTable& endpoints_;
  std::function<bool()> ready_ = [] { return true; };
  std::function<void()> on_applied_ = [] {};
  boost::asio::steady_timer retry_;
  std::chrono::milliseconds retry_delay_{250};
  boost::asio::steady_timer spacing_;
  std::chrono::milliseconds sweep_spacing_{0};
  std::chrono::steady_clock::time_point last_sweep_{};
  bool posted_ = false;
  // What changed since the last apply; a full compile when anything else did.
  std::vector<IpAddr> touched_addrs_;
  std::vector<topology::EdgeKey> touched_edges_;
  bool full_ = true;
  bool reconcile_ = false;  // the kernel may differ from last_ (tampering, a failed apply): compare
  std::optional<topology::RulesetModel> last_;
  std::optional<std::vector<IpAddr>> last_patched_;
  std::vector<std::chrono::steady_clock::time_point> awaiting_;
  std::deque<double> event_to_enforced_ms_;
  ProgrammerCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // posted work checks it (see post())
};

}  // namespace topowall::agent
