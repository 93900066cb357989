#include <gtest/gtest.h>

#include "topowall/topology/learner.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
IpAddr ip(const char* s) { return *IpAddr::parse(s); }
FlowTuple tcp(const char* s, const char* d, std::uint16_t dport, std::uint16_t sport = 40000) {
  FlowTuple f;
  f.src = ip(s);
  f.dst = ip(d);
  f.proto = Proto::tcp;
  f.sport = sport;
  f.dport = dport;
  return f;
}

struct Fixture : ::testing::Test {
  Fixture() {
    auto add = [&](const char* w, const char* id, const char* a) {
      EndpointInfo e;
      e.id = id;
      e.addresses.push_back(ip(a));
      eps.upsert(w, e);
    };
    add("web", "w1", "10.0.0.2");
    add("web", "w2", "10.0.0.3");
    add("api", "a1", "10.0.0.4");
    eps.set_host_addresses({ip("10.0.0.1")});
  }
  EndpointTable eps;
  Graph graph;
  ModeTable modes;
  Learner learner{graph, eps, modes};
  TimePoint t0 = Clock::now();
};
}  // namespace

TEST_F(Fixture, ReplicasAndEphemeralPortsCollapseIntoOneEdge) {
  EXPECT_EQ(learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080, 40001), t0), Outcome::new_edge);
  EXPECT_EQ(learner.observe(tcp("10.0.0.3", "10.0.0.4", 8080, 51234), t0 + std::chrono::seconds(5)),
            Outcome::known_edge);
  ASSERT_EQ(graph.edges().size(), 1u);
  const auto& [key, info] = *graph.edges().begin();
  EXPECT_EQ(key, (EdgeKey{"web", "api", Proto::tcp, 8080}));
  EXPECT_EQ(info.count, 2u);
  EXPECT_EQ(info.first_seen, t0);
  EXPECT_EQ(info.last_seen, t0 + std::chrono::seconds(5));
  EXPECT_EQ(info.state, EdgeState::learned);
}

TEST_F(Fixture, DirectionAndPortAreDistinct) {
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080), t0);
  learner.observe(tcp("10.0.0.4", "10.0.0.2", 8080), t0);
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 9090), t0);
  EXPECT_EQ(graph.edges().size(), 3u);
}

TEST_F(Fixture, IcmpIsKeyedByType) {
  FlowTuple f;
  f.src = ip("10.0.0.2");
  f.dst = ip("10.0.0.4");
  f.proto = Proto::icmp;
  f.icmp_type = 8;
  EXPECT_EQ(learner.observe(f, t0), Outcome::new_edge);
  EXPECT_TRUE(graph.find(EdgeKey{"web", "api", Proto::icmp, 8}));
}

TEST_F(Fixture, HostAndWorldEndsAreNamedFlowsWithoutWorkloadsIgnored) {
  EXPECT_EQ(learner.observe(tcp("10.0.0.1", "10.0.0.4", 8080), t0), Outcome::new_edge);
  EXPECT_EQ(learner.observe(tcp("10.0.0.2", "1.1.1.1", 443), t0), Outcome::new_edge);
  EXPECT_EQ(learner.observe(tcp("10.0.0.1", "1.1.1.1", 443), t0), Outcome::not_ours);
  EXPECT_TRUE(graph.find(EdgeKey{"host", "api", Proto::tcp, 8080}));
  EXPECT_TRUE(graph.find(EdgeKey{"web", "world", Proto::tcp, 443}));
  EXPECT_EQ(learner.stats().not_ours, 1u);
}

TEST_F(Fixture, OutsideLearnModeNewFlowsArePending) {
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080), t0);
  modes.global = Mode::enforce;
  EXPECT_EQ(learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080), t0), Outcome::known_edge);
  EXPECT_EQ(learner.observe(tcp("10.0.0.4", "10.0.0.2", 22), t0), Outcome::pending_new);
  EXPECT_EQ(learner.observe(tcp("10.0.0.4", "10.0.0.2", 22), t0 + std::chrono::seconds(1)), Outcome::pending_repeat);
  EXPECT_EQ(graph.edges().size(), 1u);
  ASSERT_EQ(graph.pending().size(), 1u);
  EXPECT_EQ(graph.pending().begin()->second.count, 2u);
  EXPECT_EQ(graph.pending().begin()->second.id, 1u);
}

TEST_F(Fixture, PerWorkloadOverrideAndStricterEndWins) {
  modes.global = Mode::enforce;
  modes.overrides["api"] = Mode::learn;
  // world -> api: only api votes; it learns, and a new edge from world is held for review.
  EXPECT_EQ(learner.observe(tcp("8.8.8.8", "10.0.0.4", 443), t0), Outcome::held_new);
  // web (global enforce) -> api (learn): the stricter end wins.
  EXPECT_EQ(learner.observe(tcp("10.0.0.2", "10.0.0.4", 443), t0), Outcome::pending_new);
  EXPECT_EQ(modes.effective("web", true, "api", true), Mode::enforce);
  EXPECT_EQ(modes.effective("host", false, "world", false), Mode::enforce);
}

TEST_F(Fixture, ResyncAddsMissedEdgesWithoutInflatingCounts) {
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080), t0);
  EXPECT_EQ(learner.observe(tcp("10.0.0.2", "10.0.0.4", 8080), t0, /*resync=*/true), Outcome::known_edge);
  EXPECT_EQ(graph.edges().begin()->second.count, 1u);
  EXPECT_EQ(learner.observe(tcp("10.0.0.4", "10.0.0.2", 53), t0, true), Outcome::new_edge);
}

TEST_F(Fixture, DeniedEdgesStayDeniedAndRaiseNoPending) {
  graph.observe(EdgeKey{"api", "web", Proto::tcp, 22}, t0, 0, EdgeState::denied);
  modes.global = Mode::enforce;
  EXPECT_EQ(learner.observe(tcp("10.0.0.4", "10.0.0.2", 22), t0), Outcome::denied);
  EXPECT_TRUE(graph.pending().empty());
}

TEST_F(Fixture, NewEdgeRateCountsTheWindow) {
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 1), t0 - std::chrono::minutes(10));
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 2), t0 - std::chrono::minutes(1));
  learner.observe(tcp("10.0.0.2", "10.0.0.4", 3), t0);
  EXPECT_DOUBLE_EQ(learner.new_edge_rate(t0, std::chrono::seconds(300)), 2.0 * 60 / 300);
}
