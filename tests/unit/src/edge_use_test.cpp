// Edge use from the kernel's counters (agent/edge_use.hpp): what moved between two reads stamps an edge
// that does not learn, once; a learning edge is left to its conntrack events.
#include <gtest/gtest.h>

#include "agent/edge_use.hpp"
#include "fakes.hpp"
#include "nft/elements.hpp"

using namespace topowall;
using namespace std::chrono_literals;

namespace {
struct EdgeUseRig : ::testing::Test {
  EdgeUseRig() : history(cfg, state, time) {
    state.graph.observe(edge, time.now());
    model.names = {{16, "web"}, {17, "api"}};
    state.modes.global = Mode::enforce;
  }
  std::optional<TimePoint> last_used() const { return state.graph.find(edge)->last_used; }
  void read(std::uint64_t packets) {
    writer.use = {{key, packets}};
    time.advance(30s);
    ASSERT_TRUE(use.read(writer, model, state.modes, endpoints, history));
  }

  const topology::EdgeKey edge{"web", "api", Proto::tcp, 8080};
  const topology::AllowKey key{16, 17, 6, 8080};
  fakes::FakeTime time;
  topology::State state;
  topology::EndpointTable endpoints;
  topology::RulesetModel model;
  agent::HistoryConfig cfg;
  agent::FlowHistory history;
  fakes::FakeWriter writer;
  agent::EdgeUse use;
};
}  // namespace

TEST_F(EdgeUseRig, ACounterThatMovedStampsTheEdgeOnceTheStartIsKnown) {
  read(5);
  EXPECT_FALSE(last_used()) << "the first read is the starting point: older counts are not use seen";
  read(5);
  EXPECT_FALSE(last_used()) << "nothing moved";
  read(7);
  ASSERT_TRUE(last_used());
  EXPECT_EQ(*last_used(), time.now());
  const auto stamped = time.now();
  read(2);  // the element was removed and added again: its counter started over
  EXPECT_GT(*last_used(), stamped);
}

TEST_F(EdgeUseRig, ALearningEdgeIsLeftToItsEvents) {
  state.modes.global = Mode::learn;
  read(5);
  read(9);
  EXPECT_FALSE(last_used()) << "its connections send events, which count it: not twice";
  state.modes.global = Mode::monitor;
  read(11);
  EXPECT_TRUE(last_used()) << "monitored: no events, the counter tells";
}

TEST(AllowElements, KeysDecodeToTheEdgesTheyWereMadeOf) {
  topology::RulesetModel m;
  m.cfg.mark_mask = 0x0fff0000;
  m.ids = {16, 17};
  m.names = {{16, "web"}, {17, "api"}};
  m.allow = {{16, 17, 6, 8080}, {17, 16, 1, 8}, {16, 16, 58, 128}, {17, 17, 17, 53}};
  auto l = nft::layout(m);
  std::set<topology::AllowKey> back;
  for (const char* set : {"allow", "allow_icmp", "allow_icmp6"})
    for (const auto& [k, v] : l.elements.at(set)) {
      auto key = nft::allow_key_of(m.cfg.mark_mask, set, k);
      ASSERT_TRUE(key) << set;
      back.insert(*key);
    }
  EXPECT_EQ(back, std::set<topology::AllowKey>(m.allow.begin(), m.allow.end()));
  EXPECT_FALSE(nft::allow_key_of(m.cfg.mark_mask, "eps4", {10, 0, 0, 1}));
  for (const char* set : {"allow", "allow_icmp", "allow_icmp6"}) EXPECT_TRUE(l.sets.at(set).counters) << set;
}
