// Flow intake in simulated time: a flow with an unknown end waits exactly its settle time.
#include <gtest/gtest.h>

#include "agent/flow_intake.hpp"
#include "fakes.hpp"

using namespace topowall;
using fakes::tcp;

namespace {
struct Intake : ::testing::Test {
  Intake() : learner(graph, eps, modes, {}), intake(learner, eps, time, std::chrono::milliseconds(500)) {
    (void)eps.upsert("web", fakes::container("w1", "web", {"10.0.0.2"}));
    agent::IntakeHooks h;
    h.learned = [this](const topology::EdgeKey& k, const FlowTuple&) { learned.push_back(k); };
    intake.set_hooks(std::move(h));
  }
  topology::Graph graph;
  topology::EndpointTable eps;
  topology::ModeTable modes;
  topology::Learner learner;
  fakes::FakeTime time;
  agent::FlowIntake intake;
  std::vector<topology::EdgeKey> learned;
};
}  // namespace

TEST_F(Intake, AFlowToAnUnknownEndWaitsExactlyItsSettleTime) {
  intake.on_flow(tcp("10.0.0.2", "10.0.0.9", 5432), false);
  EXPECT_EQ(intake.held(), 1u);
  time.advance(std::chrono::milliseconds(499));
  intake.release_due();
  EXPECT_TRUE(learned.empty()) << "released early";
  (void)eps.upsert("db", fakes::container("d1", "db", {"10.0.0.9"}));  // discovery caught up meanwhile
  time.advance(std::chrono::milliseconds(1));
  intake.release_due();
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_EQ(learned[0], (topology::EdgeKey{"web", "db", Proto::tcp, 5432})) << "named, not world";
}

TEST_F(Intake, KnownEndsAreLearnedAtOnceAndTheQueueIsBounded) {
  (void)eps.upsert("db", fakes::container("d1", "db", {"10.0.0.9"}));
  intake.on_flow(tcp("10.0.0.2", "10.0.0.9", 5432), false);
  EXPECT_EQ(learned.size(), 1u);
  for (std::size_t i = 0; i <= agent::FlowIntake::kMaxHeld; ++i) intake.on_flow(tcp("10.0.0.2", "192.0.2.1", 80), false);
  EXPECT_EQ(intake.held(), agent::FlowIntake::kMaxHeld);
  EXPECT_EQ(intake.counters().overflow, 1u);
  intake.flush();
  EXPECT_EQ(intake.held(), 0u);
}
