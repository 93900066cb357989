#include <gtest/gtest.h>

#include <fmt/format.h>

#include <map>
#include <random>

#include "topowall/topology/graph.hpp"
#include "topowall/topology/names.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
TimePoint t(int s) { return TimePoint{} + std::chrono::seconds(1'700'000'000 + s); }
}  // namespace

TEST(NameTable, OneIdPerNameReleasedWithItsLastReference) {
  NameTable n;
  const auto web = n.acquire("web");
  EXPECT_EQ(n.acquire("web"), web);
  const auto api = n.acquire("api");
  EXPECT_NE(api, web);
  EXPECT_EQ(n.name(web), "web");
  EXPECT_EQ(n.refs(web), 2u);
  n.release(web);
  EXPECT_EQ(n.lookup("web"), web) << "one reference left";
  n.release(web);
  EXPECT_EQ(n.lookup("web"), NameTable::kNone) << "released with its last reference";
  EXPECT_EQ(n.size(), 1u);
  EXPECT_THROW(n.release(web), std::logic_error) << "a double release is a broken invariant, not a silent reuse";
}

TEST(NameTable, NoIdIsReusedWhileReferenced) {
  NameTable n;
  std::map<NameTable::Id, std::string> held;
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    if (!held.empty() && rng() % 2) {
      auto it = std::next(held.begin(), static_cast<long>(rng() % held.size()));
      n.release(it->first);
      held.erase(it);
      continue;
    }
    const auto name = fmt::format("n{}", i);
    const auto id = n.acquire(name);
    ASSERT_FALSE(held.count(id)) << "id " << id << " handed to " << name << " while " << held[id] << " holds it";
    held[id] = name;
  }
  for (const auto& [id, name] : held) EXPECT_EQ(n.name(id), name);
  EXPECT_EQ(n.size(), held.size());
}

TEST(NameTable, ACopyHasItsOwnNamesUnderTheSameIds) {
  NameTable a;
  const auto web = a.acquire("web");
  NameTable b = a;
  a.release(web);
  EXPECT_EQ(b.lookup("web"), web);
  EXPECT_EQ(b.name(web), "web");
  EXPECT_EQ(a.lookup("web"), NameTable::kNone);
}

// Containers choose their labels, so an attacker can churn names: the table holds the names edges use
// now, and ids freed by removed edges are handed out again, so it never grows with the churn.
TEST(EdgeMap, ChurnedNamesAreReleasedAndTheTableDoesNotGrow) {
  Graph g;
  g.observe({"web", "api", Proto::tcp, 80}, t(0));
  for (int i = 0; i < 10000; ++i) {
    const EdgeKey k{fmt::format("attacker-{}", i), "api", Proto::tcp, 80};
    g.observe(k, t(i));
    ASSERT_TRUE(g.erase(k));
  }
  EXPECT_EQ(g.edges().names().size(), 2u) << "web and api, held by the edge that stays";
  EXPECT_LE(g.edges().names().capacity(), 3u) << "the churned names reuse one id";
  ASSERT_TRUE(g.erase({"web", "api", Proto::tcp, 80}));
  EXPECT_EQ(g.edges().names().size(), 0u);
}

TEST(EdgeMap, ANameStaysWhileAnyEdgeHoldsIt) {
  Graph g;
  g.observe({"web", "api", Proto::tcp, 80}, t(0));
  g.observe({"web", "db", Proto::tcp, 5432}, t(0));
  ASSERT_TRUE(g.erase({"web", "api", Proto::tcp, 80}));
  g.observe({"cache", "queue", Proto::udp, 9}, t(1));  // new names: none may take web's id
  ASSERT_EQ(g.edges().size(), 2u);
  EXPECT_EQ(g.edges().begin()->first, (EdgeKey{"cache", "queue", Proto::udp, 9}));
  EXPECT_EQ(std::next(g.edges().begin())->first, (EdgeKey{"web", "db", Proto::tcp, 5432}));
  EXPECT_FALSE(g.find({"web", "api", Proto::tcp, 80}));
  EXPECT_EQ(g.edges().names().size(), 4u);
}

// The packed map reads exactly as the std::map it replaced: the same order (names, protocol, port,
// whatever order the names were interned in) and the same values, rare fields included.
TEST(EdgeMap, ReadsAsAnOrderedMapOfEdges) {
  std::map<EdgeKey, EdgeInfo> want;
  EdgeMap got;
  std::mt19937 rng(3);
  const Proto protos[] = {Proto::tcp, Proto::udp, Proto::icmp, Proto::sctp};
  for (int i = 0; i < 3000; ++i) {
    EdgeKey k{fmt::format("w{}", rng() % 40), fmt::format("ns/app-with-a-long-name-{}", rng() % 40), protos[rng() % 4],
              static_cast<std::uint16_t>(rng() % 70000)};
    EdgeInfo e;
    e.state = static_cast<EdgeState>(rng() % 3);
    e.count = rng();
    e.first_seen = t(static_cast<int>(rng() % 1000));
    e.last_seen = e.first_seen + std::chrono::nanoseconds(rng());
    if (rng() % 10 == 0) e.comment = fmt::format("ticket {}", i);
    if (rng() % 10 == 0) e.expires = t(5000);
    if (rng() % 2) e.last_used = t(2000) + std::chrono::nanoseconds(rng());
    EXPECT_EQ(got.set(k, e), !want.count(k));
    want[k] = e;
    if (rng() % 5 == 0) {
      const auto gone = std::next(want.begin(), static_cast<long>(rng() % want.size()))->first;
      EXPECT_TRUE(got.erase(gone));
      want.erase(gone);
    }
  }
  ASSERT_EQ(got.size(), want.size());
  auto w = want.begin();
  for (const auto& [k, e] : got) {
    ASSERT_EQ(k, w->first);
    ASSERT_EQ(e, w->second) << k.to_string();
    ++w;
  }
  EdgeMap copy = got;
  got.clear();
  EXPECT_EQ(got.names().size(), 0u);
  EXPECT_EQ(copy.size(), want.size()) << "a copy keeps its own names";
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), want.begin(), want.end(),
                         [](const auto& a, const auto& b) { return a.first == b.first && a.second == b.second; }));
  EdgeMap moved = std::move(copy);
  EXPECT_EQ(moved.size(), want.size());
  EXPECT_TRUE(copy.empty());
  copy.set({"web", "api", Proto::tcp, 80}, {});  // a moved-from map stays usable
  EXPECT_EQ(copy.size(), 1u);
}
