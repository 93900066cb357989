// Pending flows: bounded per source and in all, least recently seen evicted first.
#include <gtest/gtest.h>

#include "topowall/topology/graph.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
const TimePoint t0 = Clock::now();
TimePoint at(int s) { return t0 + std::chrono::seconds(s); }
EdgeKey key(const char* src, int port) { return {src, "db", Proto::tcp, static_cast<std::uint16_t>(port)}; }
std::size_t from(const Graph& g, const std::string& src) {
  std::size_t n = 0;
  for (const auto& [k, p] : g.pending()) n += k.src == src;
  return n;
}
}  // namespace

TEST(PendingBound, ASourceAtItsBoundEvictsItsOwnLeastRecentlySeen) {
  Graph g;
  const PendingLimits lim{3, 100};
  EXPECT_TRUE(g.observe_pending(key("web", 1), at(1), lim).inserted);
  (void)g.observe_pending(key("web", 2), at(2), lim);
  (void)g.observe_pending(key("web", 3), at(3), lim);
  auto again = g.observe_pending(key("web", 1), at(4), lim);  // seen again: now the most recent
  EXPECT_FALSE(again.inserted);
  EXPECT_EQ(again.evicted, 0u);
  EXPECT_EQ(g.pending().at(key("web", 1)).count, 2u);
  auto r = g.observe_pending(key("web", 4), at(5), lim);
  EXPECT_TRUE(r.inserted);
  EXPECT_EQ(r.evicted, 1u);
  EXPECT_EQ(g.pending().size(), 3u);
  EXPECT_FALSE(g.pending().count(key("web", 2))) << "the least recently seen went";
  EXPECT_TRUE(g.pending().count(key("web", 1)));
  EXPECT_EQ(g.pending().at(key("web", 4)).id, 4u) << "ids keep counting";
}

TEST(PendingBound, AFullTableEvictsTheSourcesOwnFirstThenTheOldestOfAll) {
  Graph g;
  const PendingLimits lim{10, 4};
  (void)g.observe_pending(key("api", 1), at(1), lim);  // the oldest of all
  (void)g.observe_pending(key("web", 1), at(2), lim);
  (void)g.observe_pending(key("web", 2), at(3), lim);
  (void)g.observe_pending(key("web", 3), at(4), lim);
  auto r = g.observe_pending(key("web", 4), at(5), lim);
  EXPECT_EQ(r.evicted, 1u);
  EXPECT_TRUE(g.pending().count(key("api", 1))) << "web gives up its own, not api's";
  EXPECT_FALSE(g.pending().count(key("web", 1)));
  r = g.observe_pending(key("db", 1), at(6), lim);  // a source with nothing pending yet
  EXPECT_EQ(r.evicted, 1u);
  EXPECT_FALSE(g.pending().count(key("api", 1))) << "then the oldest of all";
  EXPECT_EQ(g.pending().size(), 4u);
}

TEST(PendingBound, ThousandsOfPortsFromOneSourceStayWithinTheBound) {
  Graph g;
  const PendingLimits lim{1000, 20000};
  (void)g.observe_pending(key("api", 22), at(0), lim);
  std::size_t evicted = 0;
  for (int port = 1; port <= 65535; ++port) evicted += g.observe_pending(key("web", port), at(port), lim).evicted;
  EXPECT_EQ(from(g, "web"), 1000u);
  EXPECT_EQ(from(g, "api"), 1u);
  EXPECT_EQ(evicted, 64535u);
  EXPECT_TRUE(g.pending().count(key("web", 65535)));
}

TEST(PendingBound, SettledRestoredAndLoadedFlowsKeepTheIndexInStep) {
  Graph g;
  const PendingLimits lim{2, 100};
  (void)g.observe_pending(key("web", 1), at(1), lim);
  (void)g.observe_pending(key("web", 2), at(2), lim);
  auto p = g.take_pending(key("web", 1));  // approved by an operator
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first_seen, at(1));
  EXPECT_FALSE(g.take_pending(key("web", 1)));
  EXPECT_EQ(g.observe_pending(key("web", 3), at(3), lim).evicted, 0u) << "the settled flow no longer counts";
  EXPECT_TRUE(g.observe(key("web", 2), at(4))) << "learned: no longer pending";
  EXPECT_EQ(g.pending().size(), 1u);
  // Loaded as they were (an older, larger state file), then brought within the limits.
  for (int port = 10; port < 20; ++port) g.restore_pending(key("api", port), {static_cast<std::uint64_t>(port), 1, at(port), at(port)});
  EXPECT_EQ(g.pending().size(), 11u);
  EXPECT_EQ(g.bound_pending(lim), 8u);
  EXPECT_EQ(from(g, "api"), 2u);
  EXPECT_TRUE(g.pending().count(key("api", 19)));
  EXPECT_TRUE(g.pending().count(key("api", 18)));
  EXPECT_EQ(g.bound_pending({2, 2}), 1u);
  EXPECT_FALSE(g.pending().count(key("web", 3))) << "the oldest of all";
  Graph copy = g;
  EXPECT_EQ(copy, g);
  EXPECT_EQ(copy.observe_pending(key("api", 30), at(30), {2, 2}).evicted, 1u) << "a copy keeps its own index";
  EXPECT_EQ(g.pending().size(), 2u);
}
