// Edge use and the flow journal on the real kernel: traffic across an allowed edge while enforcing moves
// the edge's last use and is journalled as allowed; a blocked flow is journalled as blocked. Root only.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "agent_lab.hpp"

using namespace topowall;
using namespace topowall::testing;
using nlohmann::json;

namespace {
std::optional<TimePoint> last_used(const agent::Agent& a, const topology::EdgeKey& k) {
  const auto e = a.state().graph.find(k);
  return e ? e->last_used : std::nullopt;
}
}  // namespace

TEST_F(AgentLab, TrafficOnAnAllowedEdgeWhileEnforcingMovesItsLastUseAndIsJournalled) {
  const auto dir = std::filesystem::temp_directory_path() / ("topowall-edge-use-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  journal_path = (dir / "flows.journal").string();
  start_agent();
  Server b8080(lab->ns_path("b"), 8080);
  ASSERT_NO_FATAL_FAILURE(learn_a_to_b_then_enforce());
  const topology::EdgeKey k{"twia-a", "twia-b", Proto::tcp, 8080};
  ASSERT_TRUE(pump_until([&] { return last_used(*agent, k).has_value(); })) << "the learning flow stamps it";
  const auto before = *last_used(*agent, k);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "the known edge passes while enforcing";
  EXPECT_TRUE(pump_until([&] { return *last_used(*agent, k) > before; })) << "last use did not move";
  EXPECT_FALSE(tcp_connect(lab->ns_path("c"), lab->ip("b"), 8080)) << "unknown source";
  ASSERT_TRUE(pump_until([&] { return !alerts.empty(); }));
  auto r = call("replay", {{"since_seconds", 3600}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> seen;  // flows, recorded blocked
  for (const char* g : {"allowed", "blocked"})
    for (const auto& e : r["result"][g]["edges"])
      seen[e["src"].get<std::string>() + ">" + e["dst"].get<std::string>()] = {e["flows"], e["recorded_blocked"]};
  EXPECT_GE(seen["twia-a>twia-b"].first, 2u) << r.dump();
  EXPECT_EQ(seen["twia-a>twia-b"].second, 0u);
  EXPECT_GE(seen["twia-c>twia-b"].second, 1u) << "the dropped flow, from the log: " << r.dump();
  auto stale = call("edges.stale", {{"unused_for_seconds", 3600}});
  ASSERT_TRUE(stale["ok"]);
  for (const auto& e : stale["result"]["edges"]) EXPECT_NE(e["src"], "twia-a") << "just used: not stale";
  agent.reset();
  std::filesystem::remove_all(dir);
}
