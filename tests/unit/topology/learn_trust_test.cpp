// Learning you can trust (issue 15), in simulated time: only conversations are learned, a one-way UDP
// flow only once it repeats, a scanning workload is quarantined, world ingress waits for review, and a
// workload converges only when it finds nothing new.
#include <gtest/gtest.h>

#include "topowall/topology/coverage.hpp"
#include "topowall/topology/learner.hpp"

using namespace topowall;
using namespace topowall::topology;
using namespace std::chrono_literals;

namespace {
IpAddr ip(const char* s) { return *IpAddr::parse(s); }
FlowTuple flow(const char* s, const char* d, Proto p, std::uint16_t dport, FlowPhase phase) {
  FlowTuple f;
  f.src = ip(s);
  f.dst = ip(d);
  f.proto = p;
  f.sport = 40000;
  f.dport = dport;
  f.phase = phase;
  return f;
}

struct Trust : ::testing::Test {
  Trust() {
    auto add = [&](const char* w, const char* id, const char* a) {
      EndpointInfo e;
      e.id = id;
      e.addresses.push_back(ip(a));
      eps.upsert(w, e);
    };
    add("web", "w1", "10.0.0.2");
    add("api", "a1", "10.0.0.4");
    add("log", "l1", "10.0.0.5");
  }
  Learner make(LearnConfig c = {}) { return Learner(graph, eps, modes, {}, c); }
  EndpointTable eps;
  Graph graph;
  ModeTable modes;
  TimePoint t0 = Clock::now();
};
}  // namespace

TEST_F(Trust, AnUnansweredOrRefusedConnectionIsNeverLearned) {
  auto l = make();
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 9999, FlowPhase::attempt), t0), Outcome::unanswered);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 9999, FlowPhase::refused), t0 + 1s),
            Outcome::unanswered);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 7777, FlowPhase::unanswered), t0 + 2s),
            Outcome::unanswered);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::icmp, 0, FlowPhase::unanswered), t0 + 2s),
            Outcome::unanswered);
  EXPECT_TRUE(graph.edges().empty()) << "a SYN, a reset or silence is not a conversation";
  EXPECT_TRUE(graph.pending().empty());
  EXPECT_EQ(l.attempts().at("web").refused, 1u);
  EXPECT_EQ(l.attempts().at("web").unanswered, 2u);
  EXPECT_EQ(l.stats().refused, 1u);
  // The same connection, answered: learned.
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 8080, FlowPhase::attempt), t0 + 3s), Outcome::unanswered);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 8080, FlowPhase::answered), t0 + 3s), Outcome::new_edge);
  ASSERT_EQ(graph.edges().size(), 1u);
  EXPECT_EQ(graph.edges().begin()->second.count, 1u) << "the answer counts the conversation, the SYN does not";
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 8080, FlowPhase::progress), t0 + 4s), Outcome::ignored);
}

TEST_F(Trust, AResyncedEntryStillWaitingTeachesNothing) {
  auto l = make();
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 9999, FlowPhase::attempt), t0, true), Outcome::unanswered);
  EXPECT_TRUE(graph.edges().empty());
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 8080, FlowPhase::answered), t0, true), Outcome::new_edge);
}

TEST_F(Trust, AOneWayUdpFlowIsLearnedOnlyOnceItRepeatsOverThePeriod) {
  LearnConfig c;
  c.one_way_after = 60s;
  c.one_way_events = 3;
  auto l = make(c);
  auto syslog = [&](std::chrono::seconds at, FlowPhase p = FlowPhase::attempt) {
    return l.observe(flow("10.0.0.2", "10.0.0.5", Proto::udp, 514, p), t0 + at);
  };
  EXPECT_EQ(syslog(0s), Outcome::unanswered);
  EXPECT_EQ(syslog(1s), Outcome::unanswered) << "a burst is one sighting";
  EXPECT_EQ(syslog(30s, FlowPhase::unanswered), Outcome::unanswered);
  EXPECT_EQ(syslog(50s), Outcome::unanswered) << "three sightings, but not yet spanning the period";
  EXPECT_TRUE(graph.edges().empty());
  EXPECT_EQ(syslog(60s), Outcome::new_edge);
  EXPECT_EQ(l.stats().one_way_learned, 1u);
  // A single probe of a closed UDP port, even ended, is not learned.
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::udp, 161, FlowPhase::attempt), t0), Outcome::unanswered);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::udp, 161, FlowPhase::unanswered), t0 + 30s),
            Outcome::unanswered);
  EXPECT_EQ(graph.edges().size(), 1u);
}

TEST_F(Trust, OneWayLearningCanBeTurnedOffAndStartsOverAfterSilence) {
  LearnConfig off;
  off.one_way_after = 0s;
  auto l = make(off);
  for (int i = 0; i < 10; ++i) l.observe(flow("10.0.0.2", "10.0.0.5", Proto::udp, 514, FlowPhase::attempt), t0 + i * 60s);
  EXPECT_TRUE(graph.edges().empty());
  OneWayTracker t;
  LearnConfig c;
  const EdgeKey k{"web", "log", Proto::udp, 514};
  EXPECT_FALSE(t.note(k, t0, c));
  EXPECT_FALSE(t.note(k, t0 + 30s, c));
  EXPECT_FALSE(t.note(k, t0 + 200s, c)) << "silent for two periods: the count starts over";
  EXPECT_FALSE(t.note(k, t0 + 230s, c));
  EXPECT_TRUE(t.note(k, t0 + 260s, c));
}

TEST_F(Trust, AScanningWorkloadIsQuarantinedAndItsNewEdgesHeldWithTheReason) {
  LearnConfig c;
  c.fanout_limit = 5;
  c.fanout_window = 60s;
  auto l = make(c);
  std::vector<std::string> alerts;
  l.set_on_quarantine([&](const std::string& w, const std::string& why, const EdgeKey&) { alerts.push_back(w + ":" + why); });
  // Its real edge first, then a port scan of api: closed ports answer with resets, two ports are open.
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 8080, FlowPhase::answered), t0), Outcome::new_edge);
  for (std::uint16_t p = 1; p <= 10; ++p)
    l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, p, FlowPhase::attempt), t0 + 1s);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 3, FlowPhase::answered), t0 + 2s), Outcome::held_new);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 7, FlowPhase::answered), t0 + 2s), Outcome::held_new);
  EXPECT_EQ(graph.edges().size(), 1u) << "nothing beyond its real edge is learned";
  ASSERT_EQ(graph.pending().size(), 2u);
  for (const auto& [k, p] : graph.pending()) EXPECT_EQ(p.reason, "scan") << k.to_string();
  EXPECT_EQ(alerts, std::vector<std::string>{"web:scan"}) << "one alert names the workload";
  EXPECT_EQ(l.quarantine_of("web"), "scan");
  EXPECT_EQ(l.attempts().at("web").held, 2u);
  // Another workload learns on, undisturbed.
  EXPECT_EQ(l.observe(flow("10.0.0.4", "10.0.0.5", Proto::tcp, 514, FlowPhase::answered), t0 + 2s), Outcome::new_edge);
  // A whole window later the quarantine lifts, but what was held stays held.
  EXPECT_FALSE(l.quarantined("web", t0 + 62s));
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 3, FlowPhase::answered), t0 + 63s),
            Outcome::pending_repeat);
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.5", Proto::tcp, 514, FlowPhase::answered), t0 + 63s),
            Outcome::new_edge);
}

TEST_F(Trust, ReachingManyPeersIsAFanOutAndStayingUnderTheLimitIsNot) {
  LearnConfig c;
  c.fanout_limit = 3;
  c.fanout_window = 60s;
  auto l = make(c);
  for (auto* d : {"10.0.0.4", "10.0.0.5", "10.0.0.1"})
    EXPECT_EQ(l.observe(flow("10.0.0.2", d, Proto::tcp, 80, FlowPhase::answered), t0), Outcome::new_edge);
  // Spread over time, new edges never trip it.
  EXPECT_EQ(l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 81, FlowPhase::answered), t0 + 61s), Outcome::new_edge);
  for (auto* d : {"192.0.2.1", "192.0.2.2"})
    l.observe(flow("10.0.0.2", d, Proto::tcp, 443, FlowPhase::attempt), t0 + 62s);
  l.observe(flow("10.0.0.2", "10.0.0.5", Proto::tcp, 443, FlowPhase::attempt), t0 + 62s);
  EXPECT_EQ(l.quarantine_of("web"), std::nullopt) << "three new edges in the window: at the limit, not over";
  l.observe(flow("10.0.0.2", "10.0.0.4", Proto::tcp, 443, FlowPhase::attempt), t0 + 62s);
  EXPECT_EQ(l.quarantine_of("web"), "fan-out");
}

TEST_F(Trust, NewEdgesFromWorldWaitForReviewUnlessTrusted) {
  auto l = make();
  EXPECT_EQ(l.observe(flow("203.0.113.9", "10.0.0.2", Proto::tcp, 443, FlowPhase::answered), t0), Outcome::held_new);
  ASSERT_EQ(graph.pending().size(), 1u);
  EXPECT_EQ(graph.pending().begin()->second.reason, "world");
  EXPECT_TRUE(graph.edges().empty());
  // Many clients of the same port: one held edge, counted once, however often the world repeats it.
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(l.observe(flow("203.0.113.9", "10.0.0.2", Proto::tcp, 443, FlowPhase::answered), t0 + 1s), Outcome::pending_repeat);
  EXPECT_EQ(l.attempts().at("web").held, 1u);
  EXPECT_EQ(l.stats().held, 1u);
  // Egress to world is learned as before.
  EXPECT_EQ(l.observe(flow("10.0.0.2", "203.0.113.9", Proto::tcp, 443, FlowPhase::answered), t0), Outcome::new_edge);
  LearnConfig trust;
  trust.world_pending = false;
  Graph g2;
  Learner l2(g2, eps, modes, {}, trust);
  EXPECT_EQ(l2.observe(flow("203.0.113.9", "10.0.0.2", Proto::tcp, 443, FlowPhase::answered), t0), Outcome::new_edge);
}

TEST_F(Trust, AWorkloadConvergesOnlyAfterAQuietPeriodWithNothingNew) {
  CoverageConfig cc;
  cc.quiet = 300s;
  cc.bucket = 60s;
  cc.buckets = 10;
  graph.note_workload("web", {}, t0);
  graph.observe({"web", "api", Proto::tcp, 8080}, t0 + 10s);
  graph.observe({"web", "log", Proto::udp, 514}, t0 + 70s);
  graph.observe({"web", "api", Proto::tcp, 9090}, t0 + 130s);
  LearningSignals sig;
  auto signals = [&](const std::string&) { return sig; };
  auto at = [&](std::chrono::seconds s) { return coverage(graph, {"web"}, signals, t0 + s, cc).at("web"); };
  auto c = at(429s);
  EXPECT_EQ(c.verdict, "learning");
  EXPECT_EQ(c.peers, 2u);
  EXPECT_EQ(c.edges, 3u);
  EXPECT_EQ(c.last_new_edge, t0 + 130s);
  EXPECT_EQ(c.curve, (std::vector<std::uint64_t>{0, 0, 0, 1, 1, 1, 0, 0, 0, 0}));
  EXPECT_TRUE(at(430s).converged);
  // An attempt at something new (even unanswered) or a held edge restarts the quiet period.
  sig.last_attempt = t0 + 400s;
  EXPECT_EQ(at(500s).verdict, "learning");
  EXPECT_TRUE(at(700s).converged);
  (void)graph.observe_pending({"web", "api", Proto::tcp, 22}, t0 + 650s, {}, 1, "scan");
  EXPECT_EQ(at(700s).verdict, "learning");
  EXPECT_EQ(at(700s).pending, 1u);
  sig.quarantine = "scan";
  EXPECT_EQ(at(5000s).verdict, "quarantined");
  EXPECT_FALSE(at(5000s).converged);
}
