// Edge use from kernel counters: every allowed edge's element in the kernel counts its matches, and a
// periodic read turns what moved into the edge's last use and the flow journal's allowed flows. Only for
// edges that do not learn: their connections send no conntrack events (DESIGN.md, "Conntrack events");
// a learning edge's use still comes from its events, so nothing is counted twice.
#pragma once

#include <cstdint>
#include <map>

#include "agent/flow_history.hpp"
#include "topowall/ruleset_writer.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/learner.hpp"

namespace topowall::agent {

class EdgeUse {
 public:
  // Read the counters and credit what moved since the last read. The first read only takes the
  // starting point: counts from before this agent started are not use it saw.
  [[nodiscard]] Status read(RulesetWriter& writer, const topology::RulesetModel& model, const topology::ModeTable& modes,
                            const topology::EndpointTable& endpoints, FlowHistory& history);
  std::uint64_t errors() const { return errors_; }
  void note_error() { ++errors_; }

 private:
  std::map<topology::AllowKey, std::uint64_t> last_;
  bool primed_ = false;
  std::uint64_t errors_ = 0;
};

}  // namespace topowall::agent
