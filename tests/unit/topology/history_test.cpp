// Edge use, the journal's encoding and buckets, and replay: pure, in simulated time.
#include <gtest/gtest.h>

#include "topowall/topology/journal.hpp"
#include "topowall/topology/replay.hpp"
#include "topowall/topology/schema.hpp"
#include "topowall/topology/usage.hpp"

using namespace topowall;
using namespace topowall::topology;
using namespace std::chrono_literals;

namespace {
const TimePoint kT0 = *parse_time("2026-03-01T00:00:00Z");
EdgeKey edge(const std::string& s, const std::string& d, std::uint16_t port) { return {s, d, Proto::tcp, port}; }
}  // namespace

TEST(Usage, AnEdgeIsStaleExactlyWhenUnusedForThePeriod) {
  Graph g;
  g.observe(edge("web", "api", 80), kT0);
  ASSERT_TRUE(note_used(g, edge("web", "api", 80), kT0 + 1h));
  EXPECT_FALSE(note_used(g, edge("web", "db", 5432), kT0)) << "no such edge: nothing stamped";
  const auto e = *g.find(edge("web", "api", 80));
  EXPECT_EQ(last_use(e), kT0 + 1h);
  EXPECT_FALSE(is_stale(e, kT0 + 1h + 30 * 24h - 1s, 30 * 24h));
  EXPECT_TRUE(is_stale(e, kT0 + 1h + 30 * 24h, 30 * 24h));
  ASSERT_TRUE(note_used(g, edge("web", "api", 80), kT0));  // a late, held flow
  EXPECT_EQ(last_use(*g.find(edge("web", "api", 80))), kT0 + 1h) << "use never moves back";
}

TEST(Usage, StaleListsUnusedEdgesOldestFirstAndNeverDenied) {
  Graph g;
  g.observe(edge("a", "b", 1), kT0);
  g.observe(edge("a", "c", 2), kT0 - 24h);
  g.observe(edge("a", "d", 3), kT0 - 48h, 1, EdgeState::denied);
  g.observe(edge("a", "e", 4), kT0);
  (void)note_used(g, edge("a", "e", 4), kT0 + 40 * 24h);
  auto s = stale_edges(g, kT0 + 31 * 24h, 30 * 24h);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].key, edge("a", "c", 2));
  EXPECT_EQ(s[1].key, edge("a", "b", 1));
}

TEST(Usage, LastUsedRoundTripsAndOldGraphsWithoutItStillImport) {
  Graph g;
  g.observe(edge("web", "api", 80), kT0);
  (void)note_used(g, edge("web", "api", 80), kT0 + 5min);
  auto back = graph_from_json(graph_to_json(g));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->find(edge("web", "api", 80))->last_used, kT0 + 5min);
  auto old = graph_from_json(nlohmann::json::parse(R"({"version":1,"workloads":[],"edges":[{"src":"web","dst":"api",
      "proto":"tcp","port":80,"state":"learned","count":3,"first_seen":"2026-01-01T00:00:00Z",
      "last_seen":"2026-02-01T00:00:00Z"}]})"));
  ASSERT_TRUE(old) << old.error().message;
  const auto e = *old->find(edge("web", "api", 80));
  EXPECT_FALSE(e.last_used);
  EXPECT_EQ(last_use(e), *parse_time("2026-02-01T00:00:00Z")) << "falls back to last_seen";
}

TEST(Journal, RecordsRoundTripAndATornOrFlippedTailStopsTheDecoder) {
  std::string bytes;
  JournalRecord a{minute_of(kT0), edge("web", "api", 8080), FlowVerdict::allowed, 42};
  JournalRecord b{minute_of(kT0) + 1, {"scanner", "db", Proto::udp, 53}, FlowVerdict::blocked, 7};
  encode_record(a, bytes);
  encode_record(b, bytes);
  EXPECT_EQ(bytes.size(), encoded_size(a) + encoded_size(b));
  std::vector<JournalRecord> got;
  EXPECT_EQ(decode_records(bytes, [&](const auto& r) { got.push_back(r); }), bytes.size());
  EXPECT_EQ(got, (std::vector{a, b}));
  got.clear();
  EXPECT_EQ(decode_records(std::string_view(bytes).substr(0, bytes.size() - 3), [&](const auto& r) { got.push_back(r); }),
            encoded_size(a));
  EXPECT_EQ(got.size(), 1u) << "a torn last record is not read";
  auto flipped = bytes;
  flipped[encoded_size(a) + 10] ^= 0x20;
  got.clear();
  EXPECT_EQ(decode_records(flipped, [&](const auto& r) { got.push_back(r); }), encoded_size(a));
  EXPECT_EQ(got.size(), 1u) << "a flipped bit fails the CRC";
  EXPECT_TRUE(is_journal_header(journal_header()));
  EXPECT_FALSE(is_journal_header("TWFLOWJ\n\x02\0\0\0\0\0\0\0"));
}

TEST(Journal, BucketsCountPerMinuteAndCloseOnlyWhenTheMinuteIsOver) {
  FlowBuckets b;
  const auto web_api = edge("web", "api", 80);
  for (int i = 0; i < 1000; ++i) b.add(web_api, FlowVerdict::allowed, kT0 + std::chrono::milliseconds(i * 50));
  b.add(edge("x", "api", 80), FlowVerdict::blocked, kT0 + 30s);
  EXPECT_TRUE(b.take(kT0 + 59s).empty()) << "the minute is still open";
  b.add(web_api, FlowVerdict::allowed, kT0 + 60s);  // the next minute
  auto closed = b.take(kT0 + 60s);
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[0], (JournalRecord{minute_of(kT0), web_api, FlowVerdict::allowed, 1000}));
  EXPECT_EQ(closed[1].verdict, FlowVerdict::blocked);
  EXPECT_EQ(b.take(kT0 + 61s).size(), 0u);
  auto rest = b.take(kT0 + 121s);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].minute, minute_of(kT0) + 1);
}

TEST(Journal, AScanOfDistinctKeysSpillsInsteadOfGrowing) {
  FlowBuckets b(100);
  for (std::uint16_t p = 1; p <= 1000; ++p) b.add(edge("scan", "db", p), FlowVerdict::blocked, kT0);
  EXPECT_LE(b.open_keys(), 100u);
  EXPECT_EQ(b.take(kT0, true).size(), 1000u) << "nothing lost";
}

TEST(Replay, ADayOfFlowsAgainstAGraphMissingTwoEdgesBlocksExactlyThose) {
  // A day of synthetic flows, bucketed as the agent does, over five edges.
  std::vector<EdgeKey> edges{edge("web", "api", 8080), edge("api", "db", 5432), edge("web", "cache", 6379),
                             edge("cron", "api", 8080), edge("api", "mail", 25)};
  FlowBuckets b;
  std::vector<JournalRecord> journal;
  std::map<EdgeKey, std::uint64_t> sent;
  for (int s = 0; s < 24 * 3600; s += 7) {
    const auto& k = edges[static_cast<std::size_t>(s / 7) % edges.size()];
    b.add(k, FlowVerdict::allowed, kT0 + std::chrono::seconds(s));
    ++sent[k];
    for (auto& r : b.take(kT0 + std::chrono::seconds(s))) journal.push_back(r);
  }
  for (auto& r : b.take(kT0 + 25h, true)) journal.push_back(r);
  Graph proposed;
  for (std::size_t i = 0; i < 3; ++i) proposed.observe(edges[i], kT0);
  proposed.observe(edges[4], kT0, 1, EdgeState::denied);  // cron->api missing, api->mail denied
  Replay replay(proposed, minute_of(kT0));
  for (const auto& r : journal) replay.add(r);
  auto res = replay.result();
  ASSERT_EQ(res.blocked.size(), 2u);
  std::map<EdgeKey, std::uint64_t> blocked;
  for (const auto& e : res.blocked) blocked[e.key] = e.flows;
  EXPECT_EQ(blocked, (std::map<EdgeKey, std::uint64_t>{{edges[3], sent[edges[3]]}, {edges[4], sent[edges[4]]}}));
  EXPECT_EQ(res.allowed.size(), 3u);
  EXPECT_EQ(res.allowed_flows + res.blocked_flows, 24u * 3600 / 7 + 1);
  auto j = replay_to_json(res, 1);
  EXPECT_EQ(j["blocked"]["edges"].size(), 1u);
  EXPECT_EQ(j["blocked"]["omitted"], 1);
  EXPECT_EQ(j["blocked"]["flows"], res.blocked_flows);
}

TEST(Replay, TheWindowSkipsOlderMinutesAndAnExpiredApprovalBlocks) {
  Graph g;
  g.observe(edge("web", "api", 80), kT0, 1, EdgeState::approved);
  g.edges().upsert(edge("web", "api", 80), [](auto& e, auto) { e.expires = kT0 + 10min; });
  Replay r(g, minute_of(kT0));
  r.add({minute_of(kT0) - 1, edge("web", "api", 80), FlowVerdict::allowed, 5});  // before the window
  r.add({minute_of(kT0) + 1, edge("web", "api", 80), FlowVerdict::allowed, 3});
  r.add({minute_of(kT0) + 20, edge("web", "api", 80), FlowVerdict::allowed, 2});  // after the expiry
  auto res = r.result();
  EXPECT_EQ(res.records, 2u);
  EXPECT_EQ(res.allowed_flows, 3u);
  EXPECT_EQ(res.blocked_flows, 2u);
}
