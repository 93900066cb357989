// The alert pipeline: a logged packet (NFLOG) becomes a named alert; live watchers get it at once, the
// sinks through folding (one alert per flow per window) and a per-source-workload rate limit.
#pragma once

#include "topowall/time_source.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "alerts/sinks.hpp"
#include "control/server.hpp"
#include "topowall/alert_source.hpp"
#include "topowall/topology/alerts.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/rate_limit.hpp"

namespace topowall::agent {

struct AlertCounters {
  std::uint64_t alerts = 0;
  std::uint64_t spoofed = 0;       // packets the guard dropped as spoofed (logged ones)
  std::uint64_t unclassified = 0;  // packets the guard dropped from unclassified ports (logged ones)
  std::uint64_t handler_errors = 0;
};

class AlertPipeline {
 public:
  static constexpr std::size_t kMaxWatchers = 64;
  static constexpr std::size_t kRecentAlerts = 100;  // kept for the radar's alert list

  AlertPipeline(std::chrono::seconds window, topology::Rate rate, std::vector<std::unique_ptr<alerts::Sink>> sinks,
                const topology::EndpointTable& endpoints, const topology::Graph& graph);

  // The clock of the rate limiter and the watchers' stamps (null: the system clock); the agent passes its own.
  void set_time(const TimeSource* time) { time_ = time; }
  // A blocked flow outside the graph (the log is its only witness: dropped packets never reach conntrack).
  void set_on_blocked(std::function<void(const topology::EdgeKey&, TimePoint)> f) { on_blocked_ = std::move(f); }

  void on_logged(const LoggedPacket& p);  // never throws
  // The learner quarantined a workload (a scan, a fan-out): an alert names it. Never throws.
  void on_quarantine(const std::string& workload, const std::string& reason, const topology::EdgeKey& key,
                     TimePoint when);
  void flush(TimePoint now);              // folded alerts whose window closed, to the sinks
  // Live watchers (`flows watch`): every alert and learned edge as it happens.
  [[nodiscard]] bool watch(control::PushFn push);
  bool watched() const { return !watchers_.empty(); }
  void publish(const nlohmann::json& event);

  const AlertCounters& counters() const { return counters_; }
  std::uint64_t suppressed() const { return aggregator_.suppressed(); }
  std::uint64_t rate_limited() const { return limiter_.limited(); }
  nlohmann::json rate_limited_by_workload() const { return limiter_.limited_by_key(); }
  std::uint64_t sink_drops() const;
  // The last kRecentAlerts alerts, oldest first (the radar lists them beside the map).
  nlohmann::json recent() const { return nlohmann::json(recent_); }

 private:
  void on_guard(const LoggedPacket& p);
  void raise(const topology::Alert& a);
  void emit(const topology::Alert& a);

  topology::AlertAggregator aggregator_;
  topology::KeyedRateLimiter limiter_;
  std::vector<std::unique_ptr<alerts::Sink>> sinks_;
  const topology::EndpointTable& endpoints_;
  const topology::Graph& graph_;
  std::function<void(const topology::EdgeKey&, TimePoint)> on_blocked_ = [](const auto&, TimePoint) {};
  std::vector<control::PushFn> watchers_;
  std::deque<nlohmann::json> recent_;
  AlertCounters counters_;
  const TimeSource* time_ = nullptr;
  [[nodiscard]] TimePoint now() const { return time_ ? time_->now() : Clock::now(); }
};

}  // namespace topowall::agent
