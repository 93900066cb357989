// The flow journal on disk and the agent's edge-use, stale/prune and replay methods, in simulated time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "agent/agent.hpp"
#include "agent/flow_journal.hpp"
#include "fakes.hpp"

using namespace topowall;
using namespace std::chrono_literals;
using nlohmann::json;
using topology::FlowVerdict;
using topology::JournalRecord;

namespace {
using fakes::container;
using fakes::tcp;

struct TmpDir {
  TmpDir() {
    char t[] = "/tmp/topowall-journal-XXXXXX";
    path = mkdtemp(t);
  }
  ~TmpDir() { std::filesystem::remove_all(path); }
  std::string path;
};

JournalRecord rec(std::uint32_t minute, std::uint16_t port, std::uint32_t count = 1) {
  return {minute, {"web", "api", Proto::tcp, port}, FlowVerdict::allowed, count};
}

std::vector<JournalRecord> read_all(const agent::FlowJournal& j) {
  std::vector<JournalRecord> out;
  EXPECT_TRUE(j.read([&](const JournalRecord& r) { out.push_back(r); }));
  return out;
}

std::uintmax_t disk_bytes(const std::string& path) {
  std::uintmax_t n = 0;
  for (const auto& f : {path, path + ".old"})
    if (std::filesystem::exists(f)) n += std::filesystem::file_size(f);
  return n;
}
}  // namespace

TEST(FlowJournal, StaysWithinItsSizeLimitUnderAFloodKeepingTheNewest) {
  TmpDir d;
  const auto path = d.path + "/flows.journal";
  agent::FlowJournal j(path, agent::FlowJournal::kMinBytes);
  ASSERT_TRUE(j.open());
  std::uint32_t minute = 1000;
  for (int batch = 0; batch < 200; ++batch) {
    std::vector<JournalRecord> rs;
    for (std::uint16_t p = 0; p < 100; ++p) rs.push_back(rec(minute, p));
    ++minute;
    ASSERT_TRUE(j.append(rs));
    ASSERT_LE(disk_bytes(path), agent::FlowJournal::kMinBytes) << "after batch " << batch;
  }
  EXPECT_GT(j.counters().rotations, 0u);
  EXPECT_EQ(j.bytes(), disk_bytes(path));
  auto rs = read_all(j);
  ASSERT_FALSE(rs.empty());
  EXPECT_EQ(rs.back(), rec(minute - 1, 99)) << "the newest are kept";
  EXPECT_GT(rs.front().minute, 1000u) << "the oldest went";
}

TEST(FlowJournal, ATornOrCorruptTailIsCutAtOpenAndAppendingGoesOn) {
  TmpDir d;
  const auto path = d.path + "/flows.journal";
  {
    agent::FlowJournal j(path, 1 << 20);
    ASSERT_TRUE(j.open());
    ASSERT_TRUE(j.append({rec(1, 80, 5), rec(2, 81, 6)}));
  }
  const auto good = std::filesystem::file_size(path);
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << std::string("\x30\x00\x12\x34\x56\x78garbage of a torn write", 29);
  }
  agent::FlowJournal j(path, 1 << 20);
  ASSERT_TRUE(j.open());
  EXPECT_EQ(std::filesystem::file_size(path), good);
  EXPECT_EQ(j.counters().truncated_bytes, 29u);
  ASSERT_TRUE(j.append({rec(3, 82, 7)}));
  EXPECT_EQ(read_all(j), (std::vector{rec(1, 80, 5), rec(2, 81, 6), rec(3, 82, 7)}));
}

TEST(FlowJournal, AFileThatIsNotAJournalIsMovedAsideNotFatal) {
  TmpDir d;
  const auto path = d.path + "/flows.journal";
  std::ofstream(path) << "not a journal at all";
  agent::FlowJournal j(path, 1 << 20);
  ASSERT_TRUE(j.open());
  EXPECT_TRUE(std::filesystem::exists(path + ".bad"));
  EXPECT_TRUE(read_all(j).empty());
}

namespace {
struct HistoryRig : ::testing::Test {
  HistoryRig() { reset(); }
  void reset() {
    ad = {};
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {container("w1", "web", {"10.0.0.2"}), container("a1", "api", {"10.0.0.4"}),
                   container("d1", "db", {"10.0.0.5"}), container("c1", "cron", {"10.0.0.6"})};
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    flows = fl.get();
    auto tm = std::make_unique<fakes::FakeTime>();
    tm->wall = wall;
    time = tm.get();
    ad.runtime = std::move(rt);
    ad.flows = std::move(fl);
    if (store_keep) ad.store = std::move(store_keep);
    else ad.store = std::make_unique<store::MemoryStateStore>();
    store = static_cast<store::MemoryStateStore*>(ad.store.get());
    ad.time = std::move(tm);
  }
  std::unique_ptr<agent::Agent> make() {
    agent::AgentConfig cfg;
    cfg.journal_path = dir.path + "/flows.journal";
    return std::make_unique<agent::Agent>(io, cfg, std::move(ad));
  }
  // Stops the agent and starts another on the same state and journal, as a restart does.
  std::unique_ptr<agent::Agent> restart(std::unique_ptr<agent::Agent> a) {
    a->stop();
    auto doc = store->doc;
    wall = time->wall;
    a.reset();
    auto st = std::make_unique<store::MemoryStateStore>();
    st->doc = doc;
    store_keep = std::move(st);
    reset();
    auto b = make();
    EXPECT_TRUE(b->start());
    return b;
  }
  json call(agent::Agent& a, const std::string& method, json params = json::object(), int fd = -1) {
    control::Peer p;
    p.may_write = true;
    p.passed_fd = fd;
    return a.handle({{"v", 1}, {"method", method}, {"params", params}}, p, nullptr);
  }
  TmpDir dir;
  boost::asio::io_context io;
  agent::Adapters ad;
  fakes::FakeFlowSource* flows = nullptr;
  fakes::FakeTime* time = nullptr;
  store::MemoryStateStore* store = nullptr;
  std::unique_ptr<store::StateStore> store_keep;
  TimePoint wall = fakes::FakeTime{}.wall;
};

// A day of flows at a few a minute over four edges: web->api, api->db, cron->api, web->db.
std::map<std::string, std::uint64_t> record_a_day(fakes::FakeFlowSource& flows, fakes::FakeTime& time, agent::Agent& a) {
  const std::vector<std::pair<FlowTuple, std::string>> pattern{
      {tcp("10.0.0.2", "10.0.0.4", 8080), "web -> api tcp/8080"},
      {tcp("10.0.0.4", "10.0.0.5", 5432), "api -> db tcp/5432"},
      {tcp("10.0.0.6", "10.0.0.4", 8080), "cron -> api tcp/8080"},
      {tcp("10.0.0.2", "10.0.0.5", 5432), "web -> db tcp/5432"}};
  std::map<std::string, std::uint64_t> sent;
  for (int i = 0; i < 24 * 60 * 3; ++i) {
    const auto& [f, name] = pattern[static_cast<std::size_t>(i * 7 % 11) % pattern.size()];
    flows.emit(f);
    ++sent[name];
    time.advance(20s);
    if (i % 3 == 0) a.flush_deferred();
  }
  return sent;
}

std::map<std::string, std::uint64_t> group(const json& r, const char* which) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& e : r["result"][which]["edges"])
    out[e["src"].get<std::string>() + " -> " + e["dst"].get<std::string>() + " " + e["proto"].get<std::string>() + "/" +
        std::to_string(e["port"].get<int>())] = e["flows"];
  return out;
}
}  // namespace

TEST_F(HistoryRig, ReplayOfADayAgainstAGraphMissingTwoEdgesBlocksExactlyThoseWithTheirCounts) {
  auto a = make();
  ASSERT_TRUE(a->start());
  auto sent = record_a_day(*flows, *time, *a);
  // The proposed graph: the live one without cron->api and web->db.
  auto g = a->state().graph;
  ASSERT_EQ(g.edges().size(), 4u);
  ASSERT_TRUE(g.erase({"cron", "api", Proto::tcp, 8080}));
  ASSERT_TRUE(g.erase({"web", "db", Proto::tcp, 5432}));
  const auto text = topology::graph_to_json(g).dump();
  UniqueFd fd(memfd_create("graph", MFD_CLOEXEC));
  ASSERT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  auto r = call(*a, "replay", {{"fd", true}, {"since_seconds", 24 * 3600 + 60}}, fd.get());
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(group(r, "blocked"), (std::map<std::string, std::uint64_t>{
                                     {"cron -> api tcp/8080", sent["cron -> api tcp/8080"]},
                                     {"web -> db tcp/5432", sent["web -> db tcp/5432"]}}));
  EXPECT_EQ(group(r, "allowed"), (std::map<std::string, std::uint64_t>{
                                     {"web -> api tcp/8080", sent["web -> api tcp/8080"]},
                                     {"api -> db tcp/5432", sent["api -> db tcp/5432"]}}));
  // A shorter window counts fewer flows.
  auto hour = call(*a, "replay", {{"fd", true}, {"since_seconds", 3600}}, fd.get());
  ASSERT_TRUE(hour["ok"]) << hour.dump();
  EXPECT_LT(hour["result"]["allowed"]["flows"].get<std::uint64_t>(), r["result"]["allowed"]["flows"].get<std::uint64_t>());
}

TEST_F(HistoryRig, TheJournalSurvivesARestartAndReplayWithAnApprovalAllowsThatFlow) {
  auto a = make();
  ASSERT_TRUE(a->start());
  ASSERT_TRUE(call(*a, "mode.set", {{"mode", "monitor"}})["ok"]);
  for (int i = 0; i < 5; ++i) flows->emit(tcp("10.0.0.6", "10.0.0.5", 5432));  // outside the graph: pending
  time->advance(2min);
  a = restart(std::move(a));
  auto before = call(*a, "replay");
  ASSERT_TRUE(before["ok"]) << before.dump();
  EXPECT_EQ(group(before, "blocked"), (std::map<std::string, std::uint64_t>{{"cron -> db tcp/5432", 5}}))
      << "recorded before the restart";
  const auto id = call(*a, "flows.pending")["result"][0]["id"];
  auto approved = call(*a, "replay", {{"approve", json::array({id})}});
  ASSERT_TRUE(approved["ok"]) << approved.dump();
  EXPECT_EQ(group(approved, "allowed"), (std::map<std::string, std::uint64_t>{{"cron -> db tcp/5432", 5}}));
  EXPECT_TRUE(call(*a, "flows.pending")["result"].size() == 1) << "a proposal changes nothing";
  EXPECT_FALSE(call(*a, "replay", {{"approve", json::array({999})}})["ok"]);
}

TEST_F(HistoryRig, StaleListsUnusedEdgesAndPruneNeverCutsOneUsedWithinThePeriod) {
  auto a = make();
  ASSERT_TRUE(a->start());
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));
  flows->emit(tcp("10.0.0.4", "10.0.0.5", 5432));
  ASSERT_TRUE(call(*a, "mode.set", {{"mode", "enforce"}})["ok"]);
  time->advance(std::chrono::hours(24 * 31));
  flows->table.clear();  // no connection open any more
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));  // used while enforcing
  auto stale = call(*a, "edges.stale", {{"unused_for_seconds", 30 * 24 * 3600}});
  ASSERT_TRUE(stale["ok"]) << stale.dump();
  ASSERT_EQ(stale["result"]["edges"].size(), 1u);
  EXPECT_EQ(stale["result"]["edges"][0]["src"], "api");
  // Between listing and confirming, the listed edge carries traffic again, and a bogus one is named.
  json listed = stale["result"]["edges"];
  listed.push_back({{"src", "web"}, {"dst", "api"}, {"proto", "tcp"}, {"port", 8080}});
  flows->table.clear();
  auto pruned = call(*a, "edges.prune", {{"unused_for_seconds", 30 * 24 * 3600}, {"edges", listed}});
  ASSERT_TRUE(pruned["ok"]) << pruned.dump();
  EXPECT_EQ(pruned["result"]["removed"], json::array({"api -> db tcp/5432"}));
  EXPECT_EQ(pruned["result"]["kept"].size(), 1u);
  EXPECT_TRUE(a->state().graph.find({"web", "api", Proto::tcp, 8080}));
  EXPECT_FALSE(a->state().graph.find({"api", "db", Proto::tcp, 5432}));
  // A long-lived connection (no new flow, but open in conntrack) keeps its edge: prune dumps first.
  time->advance(std::chrono::hours(24 * 31));
  flows->table = {tcp("10.0.0.2", "10.0.0.4", 8080)};
  auto kept = call(*a, "edges.prune", {{"unused_for_seconds", 30 * 24 * 3600},
                                       {"edges", json::array({{{"src", "web"}, {"dst", "api"}, {"proto", "tcp"}, {"port", 8080}}})}});
  ASSERT_TRUE(kept["ok"]) << kept.dump();
  EXPECT_TRUE(kept["result"]["removed"].empty());
  // The export and the state carry last_used.
  EXPECT_TRUE(a->persist());
  EXPECT_TRUE(store->doc->dump().find("last_used") != std::string::npos);
}
