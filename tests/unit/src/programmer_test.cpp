// The ruleset programmer on a fake kernel: coalescing, patch vs full, retry with backoff, tamper repair.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "agent/programmer.hpp"
#include "fakes.hpp"

using namespace topowall;
using fakes::ip;

namespace {
struct Programmer : ::testing::Test {
  Programmer() : prog(io, cfg, &writer, nullptr, state, eps) {
    EndpointInfo w;
    w.id = "w1";
    w.addresses = {ip("10.0.0.2")};
    (void)eps.upsert("web", w);
  }
  void run(int ms = 20) {
    io.restart();
    io.run_for(std::chrono::milliseconds(ms));
  }
  boost::asio::io_context io;
  topology::RulesetConfig cfg;
  fakes::FakeWriter writer;
  topology::State state;
  topology::EndpointTable eps;
  agent::RulesetProgrammer prog;
};
}  // namespace

TEST_F(Programmer, ABurstOfChangesIsOneTransaction) {
  prog.request_full();
  for (int i = 0; i < 50; ++i) prog.touch(topology::EdgeKey{"web", "api", Proto::tcp, static_cast<std::uint16_t>(i)});
  EXPECT_TRUE(writer.models.empty()) << "nothing before the loop turns";
  run();
  EXPECT_EQ(writer.models.size(), 1u);
  EXPECT_TRUE(prog.in_sync());
}

TEST_F(Programmer, NothingIsProgrammedBeforeDiscoveryIsReady) {
  bool ready = false;
  prog.set_ready([&] { return ready; });
  prog.request_full();
  run();
  EXPECT_TRUE(writer.models.empty()) << "a restarted agent must not take away what the kernel enforces";
  ready = true;
  prog.apply_now();
  EXPECT_EQ(writer.models.size(), 1u);
}

TEST_F(Programmer, AddressChangesOfAKnownWorkloadArePatched) {
  prog.apply_now();
  ASSERT_EQ(writer.models.size(), 1u);
  EndpointInfo w2;
  w2.id = "w2";
  w2.addresses = {ip("10.0.0.3")};
  prog.touch(eps.upsert("web", w2));
  run();
  EXPECT_EQ(writer.patches, 1);
  EXPECT_EQ(prog.applied()->ep4.count(ip("10.0.0.3")), 1u);
  // A workload without an id yet needs its edges: a full compile.
  EndpointInfo a;
  a.id = "a1";
  a.addresses = {ip("10.0.0.4")};
  prog.touch(eps.upsert("api", a));
  run();
  EXPECT_EQ(writer.patches, 1);
  EXPECT_EQ(writer.models.size(), 3u);
}

TEST_F(Programmer, AFailedTransactionIsDegradedThenRetriedWithBackoff) {
  writer.fail = 2;
  prog.apply_now();
  EXPECT_TRUE(prog.counters().degraded);
  EXPECT_FALSE(prog.in_sync());
  EXPECT_EQ(writer.invalidated, 1) << "the kernel's state is unknown: reconcile next time";
  run(200);
  EXPECT_EQ(prog.counters().apply_errors, 1u) << "first retry after 250 ms, not before";
  run(400);
  EXPECT_EQ(prog.counters().apply_errors, 2u);
  EXPECT_TRUE(writer.models.empty());
  run(600);  // the second retry waits 500 ms
  ASSERT_EQ(writer.models.size(), 1u);
  EXPECT_FALSE(prog.counters().degraded);
  EXPECT_TRUE(prog.in_sync());
}

TEST_F(Programmer, TamperingIsRepairedByAReconcile) {
  prog.repair("before anything was applied");
  EXPECT_EQ(prog.counters().ruleset_repairs, 0u);
  prog.apply_now();
  prog.repair("table deleted by pid 42");
  EXPECT_FALSE(prog.in_sync());
  run();
  EXPECT_EQ(prog.counters().ruleset_repairs, 1u);
  EXPECT_EQ(writer.models.size(), 2u) << "an unchanged model is still rewritten: the kernel lost it";
  EXPECT_TRUE(prog.in_sync());
}

TEST_F(Programmer, AnotherComponentsChangeCostsNoReconcileWhileNoticesAreComplete) {
  fakes::FakeWatch watch;
  prog.set_watch(&watch);
  prog.apply_now();
  writer.generation_moved = true;  // e.g. kube-proxy rewrote its own table
  prog.check_generation();
  run();
  EXPECT_EQ(writer.read_backs, 0) << "no read-back while the monitor lost nothing";
  EXPECT_EQ(writer.acknowledged, 1);
  EXPECT_EQ(writer.models.size(), 1u) << "nothing rewritten";
  EXPECT_EQ(prog.counters().ruleset_repairs, 0u);
}

TEST_F(Programmer, LostNoticesAreCoveredByAReadBackThatRepairsOnlyADifference) {
  fakes::FakeWatch watch;
  prog.set_watch(&watch);
  prog.apply_now();
  watch.lost = 1;  // ENOBUFS: a change to our tables may have gone unseen
  writer.generation_moved = true;
  prog.check_generation();
  run();
  EXPECT_EQ(writer.read_backs, 1);
  EXPECT_EQ(writer.models.size(), 1u) << "our tables were intact: nothing rewritten";
  writer.generation_moved = true;
  prog.check_generation();
  EXPECT_EQ(writer.read_backs, 1) << "the loss was covered once; later moves are seen by the monitor";
  watch.lost = 2;
  writer.generation_moved = true;
  writer.kernel_intact = false;  // someone edited our set while notices were lost
  prog.check_generation();
  run();
  EXPECT_EQ(writer.read_backs, 2);
  EXPECT_EQ(prog.counters().ruleset_checks, 1u);
  EXPECT_EQ(prog.counters().ruleset_repairs, 1u);
  EXPECT_EQ(writer.models.size(), 2u) << "restored";
}

// A foreign edit hidden by an overrun, then a commit of ours: the generation is ours again, but the loss
// alone must make the check read back and restore what was lost.
TEST_F(Programmer, ALossIsReadBackEvenWhenOurOwnCommitCameLast) {
  fakes::FakeWatch watch;
  prog.set_watch(&watch);
  prog.apply_now();
  watch.lost = 1;
  writer.generation_moved = false;  // our patch committed after the hidden edit
  writer.kernel_intact = false;
  prog.check_generation();
  run();
  EXPECT_EQ(writer.read_backs, 1) << "a loss must be covered whatever the generation says";
  EXPECT_EQ(prog.counters().ruleset_repairs, 1u);
  EXPECT_EQ(writer.models.size(), 2u) << "restored";
}

// The echo of our own repair overruns the monitor again: that costs one read-back per check, never
// another reconcile (the loop at 100,000 endpoints, BENCHMARKS.md section 12).
TEST_F(Programmer, OverrunsByOurOwnAppliesCostOneReadBackPerCheckNoReconcile) {
  fakes::FakeWatch watch;
  prog.set_watch(&watch);
  prog.apply_now();
  for (int i = 1; i <= 5; ++i) {
    watch.lost = i;  // every full apply overruns
    prog.check_generation();
    run();
  }
  EXPECT_EQ(writer.read_backs, 5);
  EXPECT_EQ(writer.models.size(), 1u) << "intact tables were rewritten";
  EXPECT_EQ(prog.counters().ruleset_repairs, 0u);
  EXPECT_EQ(prog.counters().ruleset_read_backs, 5u);
}

TEST_F(Programmer, WithoutAMonitorEveryMovedGenerationIsReadBack) {
  prog.apply_now();
  writer.generation_moved = true;
  writer.kernel_intact = false;
  prog.check_generation();
  run();
  EXPECT_EQ(writer.read_backs, 1);
  EXPECT_EQ(prog.counters().ruleset_repairs, 1u);
  EXPECT_EQ(writer.models.size(), 2u);
}

// A fake conntrack table: the programmer deletes what its predicate dooms.
namespace {
struct Handover : ::testing::Test {
  Handover() : prog(io, cfg, &writer, [this](const auto& doomed) { return del(doomed); }, state, eps) {
    state.modes.global = Mode::enforce;
    state.graph.observe(topology::EdgeKey{"web", "api", Proto::tcp, 8080}, TimePoint{});
    join("web", "w1", "10.0.0.2");
    join("bad", "b1", "10.0.0.3");
    join("api", "a1", "10.0.0.4");
  }
  void join(const std::string& app, const std::string& id, const char* addr) {
    EndpointInfo e;
    e.id = id;
    e.addresses = {ip(addr)};
    prog.touch(eps.upsert(app, e));
  }
  Result<std::size_t> del(const std::function<bool(const FlowTuple&)>& doomed) {
    auto n = std::erase_if(table, doomed);
    return n;
  }
  bool has(const char* s, const char* d, std::uint16_t port) const {
    return std::any_of(table.begin(), table.end(),
                       [&](const FlowTuple& f) { return f.src == ip(s) && f.dst == ip(d) && f.dport == port; });
  }
  static FlowTuple flow(const char* s, const char* d, std::uint16_t port) { return {ip(s), ip(d), Proto::tcp, 40000, port}; }
  void run() {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  boost::asio::io_context io;
  topology::RulesetConfig cfg;
  fakes::FakeWriter writer;
  topology::State state;
  topology::EndpointTable eps;
  std::vector<FlowTuple> table;
  agent::RulesetProgrammer prog;
};
}  // namespace

// Found by reliability item 3 (docs/RELIABILITY.md): the sweep of a handed-over address ran after the
// commit and killed the connection its new owner opened right after its rules were in.
TEST_F(Handover, TheNewOwnerKeepsWhatItOpensOnceItsRulesAreIn) {
  for (bool full : {false, true}) {
    SCOPED_TRACE(full ? "full apply" : "patch");
    table.clear();
    (void)eps.remove(full ? "w2" : "b1");
    join("bad", "b1", "10.0.0.3");
    prog.request_full();
    run();
    ASSERT_EQ(prog.applied()->ep4.count(ip("10.0.0.3")), 1u);
    table = {flow("10.0.0.3", "10.0.0.4", 8080), flow("10.0.0.2", "10.0.0.3", 9999)};  // the old owner's
    writer.on_commit = [&] {  // while the handover commits: the new owner connects, and one flow it may not open
      table.push_back(flow("10.0.0.3", "10.0.0.4", 8080));
      table.push_back(flow("10.0.0.3", "10.0.0.4", 22));
    };
    (void)eps.remove("b1");
    join("web", "w2", "10.0.0.3");  // bad's address, now web's
    if (full) prog.request_full();
    run();
    writer.on_commit = nullptr;
    EXPECT_EQ(prog.counters().handler_errors, 0u);
    ASSERT_EQ(table.size(), 1u) << "the old owner's connections and the forbidden one are gone";
    EXPECT_TRUE(has("10.0.0.3", "10.0.0.4", 8080)) << "web's own connection to api survives its join";
  }
}

// Each sweep walks the whole conntrack table: address changes that follow one within the spacing wait
// and share the next, and are still programmed (issue 16, cluster scale: 200 remote changes a second).
TEST(ProgrammerSpacing, AddressChangesAfterASweepShareTheNextOne) {
  boost::asio::io_context io;
  topology::RulesetConfig cfg;
  fakes::FakeWriter writer;
  topology::State state;
  topology::EndpointTable eps;
  int sweeps = 0;
  agent::ConntrackDelete del = [&](const std::function<bool(const FlowTuple&)>&) -> Result<std::size_t> {
    ++sweeps;
    return std::size_t{0};
  };
  agent::RulesetProgrammer prog(io, cfg, &writer, del, state, eps);
  prog.set_sweep_spacing(std::chrono::milliseconds(200));
  auto run = [&](int ms) {
    io.restart();
    io.run_for(std::chrono::milliseconds(ms));
  };
  EndpointInfo w;
  w.id = "w1";
  w.addresses = {ip("10.0.0.2")};
  prog.touch(eps.upsert("web", w));
  run(20);
  ASSERT_EQ(writer.models.size(), 1u);
  // The first move: swept before and after its commit, at once (nothing swept just before it).
  w.addresses = {ip("10.0.0.3")};
  prog.touch(eps.upsert("web", w));
  run(20);
  ASSERT_EQ(writer.patches, 1);
  const int after_first = sweeps;
  EXPECT_EQ(after_first, 2);
  // Three more moves right after: nothing within the spacing, then one patch and one pair of sweeps.
  for (const char* a : {"10.0.0.4", "10.0.0.5", "10.0.0.6"}) {
    w.addresses = {ip(a)};
    prog.touch(eps.upsert("web", w));
    run(10);
  }
  EXPECT_EQ(writer.patches, 1) << "waits for the spacing";
  EXPECT_EQ(sweeps, after_first);
  run(300);
  EXPECT_EQ(writer.patches, 2) << "the three moves in one patch";
  EXPECT_EQ(sweeps, after_first + 2);
  EXPECT_EQ(prog.applied()->ep4.count(ip("10.0.0.6")), 1u);
  EXPECT_EQ(prog.applied()->ep4.count(ip("10.0.0.3")), 0u);
}
