// The alert pipeline alone: logged packets to named alerts, folding, per-workload rate, the guard's
// "a sent as c", watchers.
#include <gtest/gtest.h>

#include "agent/alert_pipeline.hpp"
#include "fakes.hpp"

using namespace topowall;
using fakes::ip;
using fakes::tcp;

namespace {
struct Pipeline : ::testing::Test {
  Pipeline() {
    auto a = fakes::container("a1", "web", {"10.0.0.2"});
    a.ports = {{ip("10.0.0.2"), 7}};
    (void)eps.upsert("web", a);
    (void)eps.upsert("api", fakes::container("b1", "api", {"10.0.0.4"}));
  }
  std::unique_ptr<agent::AlertPipeline> make(topology::Rate rate = {}) {
    std::vector<std::unique_ptr<alerts::Sink>> sinks;
    sinks.push_back(std::make_unique<fakes::FakeSink>(&sent));
    auto p = std::make_unique<agent::AlertPipeline>(std::chrono::seconds(10), rate, std::move(sinks), eps, graph);
    p->set_on_blocked([this](const topology::EdgeKey& k, TimePoint) { blocked.push_back(k); });
    return p;
  }
  LoggedPacket packet(const char* src, const char* dst, std::uint16_t port, std::string reason = "") {
    LoggedPacket p;
    p.flow = tcp(src, dst, port);
    p.dropped = true;
    p.reason = std::move(reason);
    p.when = Clock::now();
    return p;
  }
  topology::EndpointTable eps;
  topology::Graph graph;
  std::vector<topology::Alert> sent;
  std::vector<topology::EdgeKey> blocked;
};
}  // namespace

TEST_F(Pipeline, ABlockedFlowIsNamedFoldedAndPending) {
  auto p = make();
  for (int i = 0; i < 5; ++i) p->on_logged(packet("10.0.0.2", "10.0.0.4", 8080));
  ASSERT_EQ(sent.size(), 1u) << "one alert per flow per window";
  EXPECT_EQ(sent[0].edge, (topology::EdgeKey{"web", "api", Proto::tcp, 8080}));
  EXPECT_TRUE(sent[0].blocked);
  EXPECT_EQ(p->counters().alerts, 5u);
  EXPECT_EQ(p->suppressed(), 4u);
  EXPECT_EQ(blocked.size(), 5u);
}

TEST_F(Pipeline, ADeniedFlowStaysQuiet) {
  graph.observe({"web", "api", Proto::tcp, 8080}, Clock::now(), 1, topology::EdgeState::denied);
  auto p = make();
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 8080));
  EXPECT_TRUE(sent.empty());
  EXPECT_TRUE(blocked.empty());
  EXPECT_EQ(p->counters().alerts, 1u);
}

TEST_F(Pipeline, AScannerSpendsOnlyItsOwnBudget) {
  auto p = make({1, 3});
  for (int port = 1; port <= 20; ++port) p->on_logged(packet("10.0.0.2", "10.0.0.4", static_cast<std::uint16_t>(port)));
  p->on_logged(packet("10.0.0.4", "10.0.0.2", 22));
  EXPECT_EQ(sent.size(), 4u) << "three of the scanner's, and api's own";
  EXPECT_EQ(sent.back().edge.src, "api");
  EXPECT_EQ(p->rate_limited(), 17u);
}

TEST_F(Pipeline, TheGuardNamesThePortAndTheStolenIdentity) {
  auto p = make();
  auto pk = packet("10.0.0.4", "10.0.0.9", 80, "spoof");
  pk.indev = 7;  // web's port, sending as api
  p->on_logged(pk);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].edge.src, "web");
  EXPECT_EQ(sent[0].as, "api");
  EXPECT_EQ(sent[0].reason, "spoofed");
  EXPECT_EQ(p->counters().spoofed, 1u);
  EXPECT_TRUE(blocked.empty()) << "never pending, never learned";
}

TEST_F(Pipeline, AForgedArpIsAnAlertThatNamesThePortAndTheAddressItClaimed) {
  auto p = make();
  auto pk = packet("10.0.0.4", "10.0.0.4", 0, "spoof");
  pk.arp = true;  // a gratuitous ARP from web's port announcing api's address
  pk.indev = 7;
  p->on_logged(pk);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].edge.src, "web");
  EXPECT_EQ(sent[0].as, "api");
  EXPECT_EQ(topology::alert_to_json(sent[0])["proto"], "arp");
  EXPECT_NE(topology::alert_text(sent[0]).find("arp"), std::string::npos);
  EXPECT_EQ(p->counters().spoofed, 1u);
  (void)eps.remove("a1");
  p->on_logged(pk);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].edge.src, "unclassified") << "a removed endpoint's port names nobody";
}

// An unclassified port's first packet is often an ARP request (a fresh container resolving its peer): the
// guard drops it; the alert says so and the count moves, like an IP packet's.
TEST_F(Pipeline, AnArpRequestFromAnUnclassifiedPortIsAnAlertAndCounted) {
  auto p = make();
  auto pk = packet("10.0.0.9", "10.0.0.2", 0, "unclassified");
  pk.arp = true;
  pk.indev = 99;  // nobody is classified behind it yet
  p->on_logged(pk);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].reason, "unclassified");
  EXPECT_EQ(sent[0].edge.src, "unclassified");
  EXPECT_EQ(sent[0].edge.dst, "web") << "whom it asked for";
  EXPECT_EQ(topology::alert_to_json(sent[0])["proto"], "arp");
  EXPECT_EQ(p->counters().unclassified, 1u);
  EXPECT_EQ(p->counters().spoofed, 0u);
  EXPECT_TRUE(blocked.empty()) << "never pending, never learned";
}

TEST_F(Pipeline, WatchersGetEveryAlertAndClosedOnesAreDropped) {
  auto p = make();
  std::vector<nlohmann::json> got;
  bool open = true;
  ASSERT_TRUE(p->watch([&](const nlohmann::json& j) {
    if (!open) return false;
    got.push_back(j);
    return true;
  }));
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 8080));
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 8080));
  EXPECT_EQ(got.size(), 2u) << "watchers see every packet, not the folded stream";
  EXPECT_EQ(got[0]["event"], "alert");
  open = false;
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 8080));
  EXPECT_FALSE(p->watched());
  for (std::size_t i = 0; i < agent::AlertPipeline::kMaxWatchers; ++i) ASSERT_TRUE(p->watch([](const nlohmann::json&) { return true; }));
  EXPECT_FALSE(p->watch([](const nlohmann::json&) { return true; })) << "bounded";
}

// The per-workload budget refills on the agent's clock, not the system's: in simulated time, exactly.
TEST_F(Pipeline, TheRateLimitRefillsOnTheInjectedClock) {
  fakes::FakeTime time;
  auto p = make({1, 1});  // one alert a second, a burst of one
  p->set_time(&time);
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 1));
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 2));
  EXPECT_EQ(sent.size(), 1u) << "the burst is spent";
  time.advance(std::chrono::milliseconds(999));
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 3));
  EXPECT_EQ(sent.size(), 1u) << "not yet a second later on the agent's clock";
  time.advance(std::chrono::milliseconds(2));
  p->on_logged(packet("10.0.0.2", "10.0.0.4", 4));
  EXPECT_EQ(sent.size(), 2u) << "a token back after one second of simulated time";
}
