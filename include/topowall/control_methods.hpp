// The control methods the agent serves (docs/PROTOCOL.md, "Methods"): one table of names shared by
// the agent, the CLI and the tests, so a name is written once.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace topowall::control {

inline constexpr std::string_view kStatus = "status";
inline constexpr std::string_view kWorkloads = "workloads";
inline constexpr std::string_view kTopologyExport = "topology.export";
inline constexpr std::string_view kTopologyImport = "topology.import";
inline constexpr std::string_view kTopologyDiff = "topology.diff";
inline constexpr std::string_view kFlowsPending = "flows.pending";
inline constexpr std::string_view kFlowsApprove = "flows.approve";
inline constexpr std::string_view kFlowsDeny = "flows.deny";
inline constexpr std::string_view kFlowsWatch = "flows.watch";
inline constexpr std::string_view kExplain = "explain";
inline constexpr std::string_view kEdgesRemove = "edges.remove";
inline constexpr std::string_view kModeSet = "mode.set";
inline constexpr std::string_view kRulesShow = "rules.show";
inline constexpr std::string_view kEdgesStale = "edges.stale";
inline constexpr std::string_view kEdgesPrune = "edges.prune";
inline constexpr std::string_view kReplay = "replay";

struct MethodInfo {
  std::string_view name;
  // Changes state: refused with `forbidden` unless the caller is root or in the control group.
  bool needs_write = false;
  // Answered by a stream of lines until the client closes (needs a streaming connection).
  bool streams = false;
};

// Every method, in the order of docs/PROTOCOL.md.
inline constexpr std::array kMethods{
    MethodInfo{kStatus},
    MethodInfo{kWorkloads},
    MethodInfo{kTopologyExport},
    MethodInfo{kTopologyImport, true},
    MethodInfo{kTopologyDiff},
    MethodInfo{kFlowsPending},
    MethodInfo{kFlowsApprove, true},
    MethodInfo{kFlowsDeny, true},
    MethodInfo{kFlowsWatch, false, true},
    MethodInfo{kExplain},
    MethodInfo{kEdgesRemove, true},
    MethodInfo{kModeSet, true},
    MethodInfo{kRulesShow},
    MethodInfo{kEdgesStale},
    MethodInfo{kEdgesPrune, true},
    MethodInfo{kReplay},
};

// The entry for `name`, or nullptr for a method the agent does not serve.
constexpr const MethodInfo* find_method(std::string_view name) {
  for (const auto& m : kMethods)
    if (m.name == name) return &m;
  return nullptr;
}

constexpr bool has_duplicate_methods() {
  for (std::size_t i = 0; i < kMethods.size(); ++i)
    for (std::size_t j = i + 1; j < kMethods.size(); ++j)
      if (kMethods[i].name == kMethods[j].name) return true;
  return false;
}
static_assert(!has_duplicate_methods(), "a control method is listed twice");

}  // namespace topowall::control
