// The compiler: golden rulesets for given graphs, and a property test that the
// compiled model's verdict is exactly "the edge is in the graph".
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "topowall/topology/ruleset.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
IpAddr ip(const std::string& s) { return *IpAddr::parse(s); }

EndpointInfo ep(const std::string& id, std::vector<std::string> addrs) {
  EndpointInfo e;
  e.id = id;
  for (auto& a : addrs) e.addresses.push_back(ip(a));
  return e;
}

std::string golden(const std::string& name) {
  std::ifstream in(std::string(TOPOWALL_GOLDEN_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Regenerate with TOPOWALL_UPDATE_GOLDEN=1 after an intended change; review the diff.
void expect_golden(const std::string& name, const std::string& text) {
  if (getenv("TOPOWALL_UPDATE_GOLDEN")) std::ofstream(std::string(TOPOWALL_GOLDEN_DIR) + "/" + name) << text;
  EXPECT_EQ(text, golden(name)) << "golden " << name << " differs";
}
}  // namespace

TEST(Compiler, GoldenSmallGraph) {
  EndpointTable eps;
  auto w1 = ep("w1", {"10.0.0.2", "fd00::2"});
  w1.ports = {{ip("10.0.0.2"), 41}, {ip("fd00::2"), 41}};  // behind host port 41
  eps.upsert("web", w1);
  eps.upsert("web", ep("w2", {"10.0.0.3"}));
  eps.upsert("api", ep("a1", {"10.0.0.4"}));
  eps.set_host_addresses({ip("10.0.0.1")});
  eps.set_external_networks({{*Cidr::parse("203.0.113.0/24"), "partner"}});
  Graph g;
  auto t = Clock::now();
  g.observe({"web", "api", Proto::tcp, 8080}, t);
  g.observe({"web", "api", Proto::icmp, 8}, t);
  g.observe({"api", "partner", Proto::tcp, 443}, t, 1, EdgeState::approved);
  g.observe({"api", "web", Proto::tcp, 22}, t, 1, EdgeState::denied);
  g.observe({"api", "world", Proto::udp, 53}, t);
  g.edges().upsert({"api", "world", Proto::udp, 53}, [&](auto& e, auto) { e.expires = t - std::chrono::seconds(1); });  // expired
  ModeTable modes;
  modes.global = Mode::enforce;
  modes.overrides["api"] = Mode::monitor;
  IdTable ids;
  auto m = compile({g, eps, modes, t}, ids, RulesetConfig{});
  EXPECT_EQ(m.allow.size(), 3u) << "denied and expired edges allow nothing";
  EXPECT_EQ(m.enforced, std::set<std::uint32_t>{ids.find("web")});
  EXPECT_EQ(m.monitored, std::set<std::uint32_t>{ids.find("api")});
  expect_golden("small.nft", render_nft(m));
}

TEST(Compiler, GoldenLearnModeHasNoModeMembers) {
  EndpointTable eps;
  eps.upsert("web", ep("w1", {"10.0.0.2"}));
  Graph g;
  ModeTable modes;
  IdTable ids;
  auto m = compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  EXPECT_TRUE(m.enforced.empty());
  EXPECT_TRUE(m.monitored.empty());
  expect_golden("learn.nft", render_nft(m));
}

TEST(Compiler, IdsAreStableAndNeverReused) {
  EndpointTable eps;
  eps.upsert("web", ep("w1", {"10.0.0.2"}));
  Graph g;
  ModeTable modes;
  IdTable ids;
  compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  auto web = ids.find("web");
  eps.remove("w1");
  eps.upsert("db", ep("d1", {"10.0.0.2"}));
  auto m = compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  EXPECT_NE(ids.find("db"), web);
  EXPECT_EQ(m.ep4.at(ip("10.0.0.2")), ids.find("db"));
}

TEST(Compiler, SizeGrowsWithEndpointsPlusEdgesNotTheirProduct) {
  EndpointTable eps;
  Graph g;
  auto t = Clock::now();
  for (int w = 0; w < 100; ++w)
    for (int r = 0; r < 10; ++r)
      eps.upsert("w" + std::to_string(w), ep("c" + std::to_string(w * 10 + r), {IpAddr::v4(0x0a000000 + w * 10 + r).to_string()}));
  for (int i = 0; i < 2000; ++i)
    g.observe({"w" + std::to_string(i % 100), "w" + std::to_string(i / 20), Proto::tcp, static_cast<std::uint16_t>(1000 + i)}, t);
  ModeTable modes;
  IdTable ids;
  auto m = compile({g, eps, modes, t}, ids, RulesetConfig{});
  EXPECT_EQ(m.ep4.size(), 1000u);
  EXPECT_EQ(m.allow.size(), 2000u);
  EXPECT_EQ(m.ids.size(), 102u);  // 100 workloads + host + world
}

TEST(Compiler, IdsBeyondTheMarkBitsAreReportedNotAliased) {
  EndpointTable eps;
  Graph g;
  ModeTable modes;
  IdTable ids;
  RulesetConfig cfg;
  cfg.mark_mask = 0x00000fc0;  // 6 bits: ids up to 63
  for (int i = 0; i < 60; ++i) eps.upsert("w" + std::to_string(i), ep("c" + std::to_string(i), {IpAddr::v4(0x0a000100 + i).to_string()}));
  auto m = compile({g, eps, modes, Clock::now()}, ids, cfg);
  EXPECT_EQ(mark_capacity(cfg.mark_mask), 63u);
  EXPECT_FALSE(m.over_capacity.empty());
  for (auto id : m.ids) EXPECT_LE(id, 63u);
  for (const auto& [a, id] : m.ep4) EXPECT_LE(id, 63u);
  EXPECT_EQ(mark_value(cfg.mark_mask, 5), 5u << 6);
  // Fail closed: the excess keeps its addresses, under the shared overflow id that no edge names.
  EXPECT_EQ(m.ep4.size(), 60u);
  auto last = IpAddr::v4(0x0a000100 + 59);
  EXPECT_EQ(m.ep4.at(last), kOverflowId);
  g.observe({"w59", "w0", Proto::tcp, 80}, Clock::now());
  modes.global = Mode::enforce;
  m = compile({g, eps, modes, Clock::now()}, ids, cfg);
  EXPECT_EQ(evaluate(m, last, IpAddr::v4(0x0a000100), Proto::tcp, 80), Verdict::alert_drop) << "enforced as no edge";
  EXPECT_EQ(evaluate(m, IpAddr::v4(0x0a000100), IpAddr::v4(0x0a000101), Proto::tcp, 80), Verdict::alert_drop);
}

TEST(Compiler, DisjointIntervalsCoverTheSpaceMostSpecificWins) {
  auto v = disjoint_intervals(AF_INET, {{*Cidr::parse("10.0.0.0/8"), 20}, {*Cidr::parse("10.1.0.0/16"), 21},
                                        {*Cidr::parse("10.1.2.3/32"), kHostId}},
                              kWorldId);
  ASSERT_EQ(v.size(), 7u);
  EXPECT_EQ(v.front().first.to_string(), "0.0.0.0");
  EXPECT_EQ(v.back().last.to_string(), "255.255.255.255");
  for (std::size_t i = 1; i < v.size(); ++i) EXPECT_NE(v[i - 1].id, v[i].id) << "adjacent equal ranges merge";
  RulesetModel m;
  m.net4 = v;
  m.ep4[ip("10.9.9.9")] = 50;
  m.allow = {{50, 21, 6, 1}, {50, kHostId, 6, 2}, {50, 20, 6, 3}, {50, kWorldId, 6, 4}};
  m.enforced = {50};
  EXPECT_EQ(evaluate(m, ip("10.9.9.9"), ip("10.1.5.5"), Proto::tcp, 1), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.9.9.9"), ip("10.1.2.3"), Proto::tcp, 2), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.9.9.9"), ip("10.200.0.1"), Proto::tcp, 3), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.9.9.9"), ip("8.8.8.8"), Proto::tcp, 4), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.9.9.9"), ip("8.8.8.8"), Proto::tcp, 3), Verdict::alert_drop);
}

// For random graphs and packets, the model's verdict is "the edge is in the graph"
// (or the workload is not enforcing, or the port is failsafe).
TEST(CompilerProperty, VerdictEqualsEdgeInGraph) {
  std::mt19937 rng(20261130);
  for (int round = 0; round < 200; ++round) {
    EndpointTable eps;
    int workloads = 2 + static_cast<int>(rng() % 8);
    std::vector<std::string> addrs;
    for (int w = 0; w < workloads; ++w)
      for (int r = 0; r < 1 + static_cast<int>(rng() % 3); ++r) {
        auto a = IpAddr::v4(0x0a000000 + static_cast<std::uint32_t>(w * 16 + r)).to_string();
        eps.upsert("w" + std::to_string(w), ep("c" + std::to_string(w) + "-" + std::to_string(r), {a}));
        addrs.push_back(a);
      }
    addrs.push_back("192.0.2.7");  // world
    Graph g;
    ModeTable modes;
    modes.global = rng() % 2 ? Mode::enforce : Mode::monitor;
    for (int w = 0; w < workloads; ++w)
      if (rng() % 4 == 0) modes.overrides["w" + std::to_string(w)] = static_cast<Mode>(rng() % 3);
    const Proto protos[] = {Proto::tcp, Proto::udp, Proto::sctp, Proto::icmp};
    for (int e = 0; e < 20; ++e) {
      auto s = "w" + std::to_string(rng() % workloads), d = rng() % 5 ? "w" + std::to_string(rng() % workloads) : "world";
      g.observe({s, d, protos[rng() % 4], static_cast<std::uint16_t>(1 + rng() % 5)}, Clock::now(), 1,
                rng() % 6 ? EdgeState::learned : EdgeState::denied);
    }
    IdTable ids;
    RulesetConfig cfg;
    cfg.failsafe = {};
    auto m = compile({g, eps, modes, Clock::now()}, ids, cfg);
    for (int p = 0; p < 200; ++p) {
      auto src = ip(addrs[rng() % addrs.size()]), dst = ip(addrs[rng() % addrs.size()]);
      auto proto = protos[rng() % 4];
      auto port = static_cast<std::uint16_t>(1 + rng() % 5);
      auto sn = eps.resolve(src), dn = eps.resolve(dst);
      bool ours = eps.is_workload(sn) || eps.is_workload(dn);
      const auto e = g.find({sn, dn, proto, port});
      bool allowed = e && e->state != EdgeState::denied;
      auto mode = modes.effective(sn, eps.is_workload(sn), dn, eps.is_workload(dn));
      Verdict want = !ours || allowed || mode == Mode::learn ? Verdict::accept
                     : mode == Mode::enforce                 ? Verdict::alert_drop
                                                             : Verdict::alert_accept;
      ASSERT_EQ(evaluate(m, src, dst, proto, port), want)
          << sn << " -> " << dn << " " << to_string(proto) << "/" << port << " round " << round;
    }
  }
}

// Patching a compiled model for the addresses and edges that changed gives
// exactly what a full compile of the new state gives.
TEST(CompilerProperty, PatchEqualsFullCompile) {
  std::mt19937 rng(7);
  for (int round = 0; round < 100; ++round) {
    EndpointTable eps;
    Graph g;
    ModeTable modes;
    modes.global = static_cast<Mode>(rng() % 3);
    IdTable ids;
    auto now = Clock::now();
    auto m = compile({g, eps, modes, now}, ids, RulesetConfig{});
    for (int step = 0; step < 30; ++step) {
      std::vector<IpAddr> addrs;
      std::vector<EdgeKey> edges;
      auto w = "w" + std::to_string(rng() % 6);
      auto id = "c" + std::to_string(rng() % 10);
      switch (rng() % 4) {
        case 0: {  // a container starts, or moves to another identity or address
          auto a = IpAddr::v4(0x0a000000 + rng() % 12);
          g.note_workload(w, {}, now);
          auto moved = eps.upsert(w, ep(id, {a.to_string()}));
          addrs = moved;
          break;
        }
        case 1:
          addrs = eps.remove(id);
          break;
        case 2: {  // an edge is learned or approved
          EdgeKey k{w, rng() % 4 ? "w" + std::to_string(rng() % 6) : "world", Proto::tcp, static_cast<std::uint16_t>(80 + rng() % 3)};
          g.observe(k, now, 1, rng() % 5 ? EdgeState::learned : EdgeState::denied);
          edges.push_back(k);
          break;
        }
        case 3: {  // an edge is revoked
          if (g.edges().empty()) break;
          auto it = g.edges().begin();
          std::advance(it, rng() % g.edges().size());
          edges.push_back(it->first);
          g.erase(it->first);
          break;
        }
      }
      if (patchable({g, eps, modes, now}, ids, addrs))
        patch(m, {g, eps, modes, now}, ids, addrs, edges);
      else
        m = compile({g, eps, modes, now}, ids, RulesetConfig{});
      IdTable same = ids;
      auto full = compile({g, eps, modes, now}, same, RulesetConfig{});
      ASSERT_EQ(m.ep4, full.ep4) << "round " << round << " step " << step;
      ASSERT_EQ(m.allow, full.allow) << "round " << round << " step " << step;
      ASSERT_EQ(m.enforced, full.enforced);
      ASSERT_EQ(m.monitored, full.monitored);
      // A patch may keep the chains of an id nothing refers to any more; the
      // next full apply prunes them. It never lacks one.
      ASSERT_TRUE(std::includes(m.ids.begin(), m.ids.end(), full.ids.begin(), full.ids.end()));
    }
  }
}

// Failsafe ports protect the node only: ssh from a container to the host passes, to another container or
// to the world it is judged like any port.
TEST(Compiler, FailsafePortsProtectTheNodeNotContainers) {
  EndpointTable eps;
  eps.upsert("web", ep("w1", {"10.0.0.2"}));
  eps.upsert("db", ep("d1", {"10.0.0.3"}));
  eps.set_host_addresses({ip("10.0.0.1")});
  Graph g;
  ModeTable modes;
  modes.global = Mode::enforce;
  IdTable ids;
  auto m = compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  EXPECT_EQ(evaluate(m, ip("10.0.0.2"), ip("10.0.0.1"), Proto::tcp, 22), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.0.0.2"), ip("10.0.0.3"), Proto::tcp, 22), Verdict::alert_drop);
  EXPECT_EQ(evaluate(m, ip("10.0.0.2"), ip("192.0.2.9"), Proto::tcp, 22), Verdict::alert_drop);
  EXPECT_EQ(evaluate(m, ip("192.0.2.9"), ip("10.0.0.3"), Proto::tcp, 22), Verdict::alert_drop);
}

// The guard's reference semantics: a port sends from its own addresses only; an unclassified port is
// refused unless the node learns, and never with an address the node knows to be another's.
TEST(Compiler, GuardAcceptsOnlyAPortsOwnAddresses) {
  EndpointTable eps;
  auto a = ep("a1", {"10.0.0.2", "fd00::2"});
  a.ports = {{ip("10.0.0.2"), 7}, {ip("fd00::2"), 7}};
  auto b = ep("b1", {"10.0.0.3"});
  b.ports = {{ip("10.0.0.3"), 8}};
  eps.upsert("a", a);
  eps.upsert("b", b);
  Graph g;
  ModeTable modes;
  IdTable ids;
  auto m = compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  EXPECT_EQ(m.port4.at(ip("10.0.0.2")), 7u);
  EXPECT_EQ(guard(m, 7, ip("10.0.0.2")), GuardVerdict::accept);
  EXPECT_EQ(guard(m, 7, ip("fd00::2")), GuardVerdict::accept);
  EXPECT_EQ(guard(m, 7, ip("10.0.0.3")), GuardVerdict::spoofed) << "a sends as b";
  EXPECT_EQ(guard(m, 7, ip("10.0.0.99")), GuardVerdict::spoofed) << "an unassigned address";
  EXPECT_EQ(guard(m, 9, ip("10.0.0.3")), GuardVerdict::spoofed) << "an unclassified port using b's address";
  EXPECT_EQ(guard(m, 9, ip("10.0.0.50")), GuardVerdict::accept) << "unclassified, learning";
  EXPECT_EQ(guard(m, 0, ip("10.0.0.3")), GuardVerdict::accept) << "not a container port";
  modes.global = Mode::enforce;
  m = compile({g, eps, modes, Clock::now()}, ids, RulesetConfig{});
  EXPECT_EQ(guard(m, 9, ip("10.0.0.50")), GuardVerdict::unclassified);
  // An address that moves to another endpoint moves its port with it (patched).
  auto b2 = ep("b2", {"10.0.0.2"});
  b2.ports = {{ip("10.0.0.2"), 11}};
  eps.upsert("b", b2);
  patch(m, {g, eps, modes, Clock::now()}, ids, {ip("10.0.0.2")}, {});
  EXPECT_EQ(m.port4.at(ip("10.0.0.2")), 11u);
  EXPECT_EQ(guard(m, 7, ip("10.0.0.2")), GuardVerdict::spoofed);
}

// Ids of workloads gone for a while are reused; the new holder inherits nothing of the old one.
TEST(Compiler, AReusedIdCarriesNoneOfItsOldPermissions) {
  EndpointTable eps;
  Graph g;
  ModeTable modes;
  modes.global = Mode::enforce;
  IdTable ids;
  RulesetConfig cfg;
  cfg.mark_mask = 0x1f;  // ids up to 31: sixteen workloads (16..31)
  const auto cap = mark_capacity(cfg.mark_mask);
  auto t0 = Clock::now();
  auto addr = [](int base, int i) { return IpAddr::v4(0x0a000000 + base + i).to_string(); };
  eps.upsert("db", ep("d", {"10.0.0.1"}));
  for (int i = 0; i < 16; ++i) eps.upsert("old" + std::to_string(i), ep("o" + std::to_string(i), {addr(0x10, i)}));
  eps.upsert("late", ep("l", {"10.0.0.200"}));
  g.observe({"old0", "db", Proto::tcp, 5432}, t0);
  auto m = compile({g, eps, modes, t0}, ids, cfg);
  ASSERT_EQ(m.over_capacity, (std::set<std::string>{"late", "old15"})) << "eighteen workloads, sixteen ids";
  auto old0 = ids.find("old0");

  // The old workloads stop; their ids come back only after the hold, and only for names without addresses.
  for (int i = 0; i < 16; ++i) (void)eps.remove("o" + std::to_string(i));
  std::set<std::string> live{"db", "late"};
  EXPECT_TRUE(ids.collect(live, t0, std::chrono::minutes(10), cap).empty());
  EXPECT_TRUE(ids.collect(live, t0 + std::chrono::minutes(9), std::chrono::minutes(10), cap).empty());
  EXPECT_EQ(ids.collect(live, t0 + std::chrono::minutes(10), std::chrono::minutes(10), cap).size(), 17u)
      << "sixteen released, and the overflowed one moved into the bits";
  EXPECT_EQ(ids.find("old0"), 0u);
  EXPECT_EQ(ids.find("db"), 16u) << "a live name keeps its id";
  EXPECT_EQ(ids.find("late"), old0) << "the lowest freed id";

  // The new holder of old0's id may not reach db; no element of old0 survives.
  m = compile({g, eps, modes, t0 + std::chrono::minutes(11)}, ids, cfg);
  EXPECT_TRUE(m.over_capacity.empty()) << "every workload fits again";
  EXPECT_EQ(evaluate(m, ip("10.0.0.200"), ip("10.0.0.1"), Proto::tcp, 5432), Verdict::alert_drop);
  EXPECT_TRUE(m.allow.empty());
  // old0 comes back: a fresh id and its edge again, by a full compile (see patchable()).
  eps.upsert("old0", ep("o0", {"10.0.0.16"}));
  EXPECT_FALSE(patchable({g, eps, modes, t0}, ids, {ip("10.0.0.16")}));
  m = compile({g, eps, modes, t0 + std::chrono::minutes(12)}, ids, cfg);
  EXPECT_TRUE(m.over_capacity.empty());
  EXPECT_EQ(evaluate(m, ip("10.0.0.16"), ip("10.0.0.1"), Proto::tcp, 5432), Verdict::accept);
  EXPECT_EQ(evaluate(m, ip("10.0.0.200"), ip("10.0.0.1"), Proto::tcp, 5432), Verdict::alert_drop);
}

// A saved state that gives two names one id (corrupt or hostile) must not make them share permissions.
TEST(Compiler, RestoredIdsNeverAlias) {
  IdTable ids;
  ids.restore({{"a", 20}, {"b", 20}, {"c", 21}, {"d", 2}}, 0);
  EXPECT_EQ(ids.find("a"), 0u);
  EXPECT_EQ(ids.find("b"), 0u);
  EXPECT_EQ(ids.find("c"), 21u);
  EXPECT_EQ(ids.find("d"), 0u) << "a reserved id";
  std::set<std::uint32_t> seen{21};
  for (const char* n : {"a", "b", "d", "e"}) EXPECT_TRUE(seen.insert(ids.id(n)).second) << n;
}
