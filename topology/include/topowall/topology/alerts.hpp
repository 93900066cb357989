// Alerts about flows outside the graph, aggregated so repeats do not flood.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "topowall/topology/graph.hpp"

namespace topowall::topology {

struct Alert {
  TimePoint time{};
  EdgeKey edge;
  std::string src_addr, dst_addr;
  bool blocked = false;  // enforce; false: would-block (monitor)
  // Why: "no_edge", or "ctmark_taken" (another component had set the
  // connection's conntrack mark, so the ruleset could not look up its edge).
  // The guard's: "spoofed" (a container sent from an address not its own; `as` names whom the address
  // belongs to) or "unclassified" (from a container port not classified yet).
  std::string reason = "no_edge";
  std::string as;
  // The learner's: "scan" or "fan-out" (the source workload reached too many new edges while learning;
  // its further new edges are held for review, verdict "held"; the edge is the one that tripped it).
  bool held = false;
  bool arp = false;  // a forged ARP (the guard's): no transport protocol or port
  std::uint64_t count = 1;
  bool summary = false;  // repeats folded since the first alert
};

nlohmann::json alert_to_json(const Alert& a);
nlohmann::json alert_json_base(const Alert& a);
std::string alert_text(const Alert& a);

class AlertAggregator {
 public:
  explicit AlertAggregator(std::chrono::seconds window = std::chrono::seconds(10)) : window_(window) {}
  // The first packet of a flow alerts at once; repeats within the window are counted.
  std::optional<Alert> on_packet(const Alert& a);
  // Summaries of repeats whose window has closed.
  std::vector<Alert> flush(TimePoint now);
  std::uint64_t suppressed() const { return suppressed_; }

 private:
  struct Slot {
    Alert last;
    TimePoint opened;
    std::uint64_t repeats = 0;
  };
  std::chrono::seconds window_;
  // Keyed by the reason too: a spoofing attempt is never folded into an ordinary no-edge alert.
  std::map<std::tuple<EdgeKey, bool, std::string>, Slot> open_;
  std::uint64_t suppressed_ = 0;
};

}  // namespace topowall::topology
