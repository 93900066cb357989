// The policy service in simulated time: learning windows, auto-promotion and approval expiry happen
// exactly at their boundary, never a tick early, and without sleeping.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "agent/policy_service.hpp"
#include "fakes.hpp"

using namespace topowall;
using namespace std::chrono_literals;
using fakes::ip;
using nlohmann::json;

namespace {
struct Policy : ::testing::Test {
  Policy() : prog(io, rcfg, &writer, nullptr, state, eps), policy(cfg, state, eps, prog, time) {
    prog.set_time(&time);
    policy.set_on_dirty([this] { ++dirty; });
    (void)eps.upsert("web", fakes::container("w1", "web", {"10.0.0.2"}));
    (void)eps.upsert("db", fakes::container("d1", "db", {"10.0.0.3"}));
    state.graph.note_workload("web", {}, time.now());
    state.graph.note_workload("db", {}, time.now());
  }
  boost::asio::io_context io;
  topology::RulesetConfig rcfg;
  fakes::FakeWriter writer;
  topology::State state;
  topology::EndpointTable eps;
  fakes::FakeTime time;
  agent::PolicyConfig cfg;
  agent::RulesetProgrammer prog;
  agent::PolicyService policy;
  int dirty = 0;
};
}  // namespace

TEST_F(Policy, TheLearningWindowEndsExactlyAtItsBoundary) {
  cfg.after_learn = Mode::enforce;
  policy.set_global_mode(Mode::learn, 60s);
  time.advance(59999ms);
  policy.tick();
  EXPECT_EQ(state.modes.global, Mode::learn) << "a millisecond early";
  time.advance(1ms);
  policy.tick();
  EXPECT_EQ(state.modes.global, Mode::enforce);
  EXPECT_FALSE(state.learn_until);
}

TEST_F(Policy, ANewWorkloadLearnsOnItsOwnThenFollowsTheNode) {
  cfg.new_workload_learn_for = 30s;
  state.modes.global = Mode::enforce;
  policy.on_new_workload("cache");
  EXPECT_EQ(state.modes.of("cache"), Mode::learn);
  time.advance(29s);
  policy.tick();
  EXPECT_EQ(state.modes.of("cache"), Mode::learn);
  time.advance(1s);
  policy.tick();
  EXPECT_EQ(state.modes.of("cache"), Mode::enforce);
  EXPECT_GT(dirty, 0) << "the change is saved";
}

TEST_F(Policy, AQuietLearnerIsPromotedExactlyAfterTheQuietPeriod) {
  cfg.auto_promote_after = 300s;
  state.modes.global = Mode::monitor;
  state.modes.overrides["web"] = Mode::learn;
  time.advance(200s);
  state.graph.observe({"web", "db", Proto::tcp, 5432}, time.now());  // a new edge restarts the quiet period
  time.advance(299s);
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::learn);
  time.advance(1s);
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::enforce);
  EXPECT_EQ(state.modes.of("db"), Mode::monitor) << "only learners are promoted";
}

// Auto-promotion waits for convergence, not mere quiet (issue 15): a quarantined workload, or one still
// trying new edges (answered or not), or with a flow newly held for review, stays learning.
TEST_F(Policy, AutoPromotionWaitsForConvergence) {
  cfg.auto_promote_after = 300s;
  state.modes.global = Mode::monitor;
  state.modes.overrides["web"] = Mode::learn;
  topology::LearningSignals sig;
  policy.set_signals([&](const std::string& w) { return w == "web" ? sig : topology::LearningSignals{}; });
  state.graph.observe({"web", "db", Proto::tcp, 5432}, time.now());
  sig.quarantine = "scan";
  time.advance(1000s);
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::learn) << "quarantined: never promoted";
  sig.quarantine.reset();
  sig.last_attempt = time.now() - 10s;  // a refused attempt at a new edge, 10 s ago
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::learn) << "still trying something new";
  time.advance(200s);
  (void)state.graph.observe_pending({"web", "db", Proto::tcp, 22}, time.now(), {}, 1, "scan");
  time.advance(100s);
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::learn) << "a flow held for review 100 s ago";
  time.advance(200s);
  policy.tick();
  EXPECT_EQ(state.modes.of("web"), Mode::enforce);
}

TEST_F(Policy, AnApprovalExpiresAtItsTimeAndLeavesTheKernel) {
  const topology::EdgeKey k{"web", "db", Proto::tcp, 5432};
  (void)state.graph.observe_pending(k, time.now(), {});
  auto r = policy.decide_flows(json{{"all", true}, {"for_seconds", 90}}, topology::EdgeState::approved);
  ASSERT_FALSE(r.error) << r.body.dump();
  ASSERT_TRUE(state.graph.find(k));
  prog.apply_now();
  ASSERT_FALSE(writer.models.empty());
  EXPECT_EQ(writer.last().allow.size(), 1u);
  time.advance(89999ms);
  policy.tick();
  EXPECT_TRUE(state.graph.find(k));
  time.advance(1ms);
  policy.tick();
  EXPECT_FALSE(state.graph.find(k)) << "expired at its boundary";
  prog.apply_now();
  EXPECT_TRUE(writer.last().allow.empty()) << "and gone from the kernel";
}

TEST_F(Policy, CommandsAnswerTypedErrorsAndChangeNothingOnError) {
  auto r = policy.decide_flows(json{{"ids", json::array({7})}}, topology::EdgeState::approved);
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.body["error"]["code"], "not_found");
  r = policy.remove_edge(json{{"src", "web"}, {"dst", "db"}, {"proto", "tcp"}, {"port", 1}});
  EXPECT_EQ(r.body["error"]["code"], "not_found");
  r = policy.set_mode(json{{"mode", "sometimes"}});
  EXPECT_EQ(r.body["error"]["code"], "bad_params");
  r = policy.import_graph(json{{"graph", {{"version", 99}}}}, -1);
  EXPECT_EQ(r.body["error"]["code"], "invalid_graph");
  EXPECT_EQ(dirty, 0);
}
