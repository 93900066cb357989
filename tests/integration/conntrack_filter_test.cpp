// The conntrack event filter on the real kernel, through the whole agent: connections an edge allows while an
// end is enforced carry no events bit, and the kernel drops their events before they reach the agent; a
// learning pair's connections keep theirs, allowed by an edge or not. Root only.
#include <gtest/gtest.h>

#include "agent_lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {
std::uint64_t edge_count(const agent::Agent& a, const topology::EdgeKey& k) {
  const auto e = a.state().graph.find(k);
  return e ? e->count : 0;
}
}  // namespace

TEST_F(AgentLab, EnforcedConnectionsOnAnEdgeSendNoEventsLearningOnesDo) {
  start_agent();
  Server b8080(lab->ns_path("b"), 8080);
  Server a9090(lab->ns_path("a"), 9090);
  const topology::EdgeKey enforced{"twia-a", "twia-b", Proto::tcp, 8080};
  const topology::EdgeKey learning{"twia-c", "twia-a", Proto::tcp, 9090};
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  ASSERT_TRUE(pump_until([&] { return edge_count(*agent, enforced) >= 1; })) << "learnt while b learned";
  ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}, {"workload", "twia-b"}})["ok"]);
  pump(100);

  auto counters = [&] { return call("status")["result"]["counters"]; };
  EXPECT_EQ(counters()["conntrack_filter_failed"], 0) << "the filter is attached";
  const auto count_before = edge_count(*agent, enforced);
  const auto messages_before = counters()["conntrack_messages"].get<std::uint64_t>();
  constexpr int kConnections = 20;
  for (int i = 0; i < kConnections; ++i)
    ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "the edge allows a -> b while b enforces";
  // Then a learning pair (a and c learn): events come in order, so once this one is learnt, any event of the
  // connections above has been read too.
  ASSERT_TRUE(tcp_connect(lab->ns_path("c"), lab->ip("a"), 9090));
  ASSERT_TRUE(pump_until([&] { return edge_count(*agent, learning) >= 1; })) << "a learning flow's events arrive";
  EXPECT_EQ(edge_count(*agent, enforced), count_before) << "an enforced pair's connection reached the agent";
  const auto messages = counters()["conntrack_messages"].get<std::uint64_t>() - messages_before;
  EXPECT_LT(messages, static_cast<std::uint64_t>(kConnections)) << "each enforced connection sends at least one event";

  // A learning pair on an edge it has: still seen (the learner counts it).
  const auto learnt = edge_count(*agent, learning);
  ASSERT_TRUE(tcp_connect(lab->ns_path("c"), lab->ip("a"), 9090));
  EXPECT_TRUE(pump_until([&] { return edge_count(*agent, learning) > learnt; })) << "a learning edge's use is seen";
}
