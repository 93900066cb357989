#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>

#include "agent/agent.hpp"
#include "fakes.hpp"
#include "topowall/topology/counters.hpp"
#include "topowall/topology/metrics.hpp"

using namespace topowall;
using nlohmann::json;

namespace {
using fakes::container;
using fakes::ip;
using fakes::tcp;

struct Rig {
  Rig() {
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {container("w1", "web", {"10.0.0.2"}), container("w2", "web", {"10.0.0.3"}),
                   container("a1", "api", {"10.0.0.4"})};
    runtime = rt.get();
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    flows = fl.get();
    auto st = std::make_unique<store::MemoryStateStore>();
    store = st.get();
    auto aw = std::make_unique<fakes::FakeAddressWatcher>();
    addrs = aw.get();
    ad.runtime = std::move(rt);
    ad.flows = std::move(fl);
    ad.store = std::move(st);
    ad.addresses = std::move(aw);
  }
  std::unique_ptr<agent::Agent> make(agent::AgentConfig cfg = {}) {
    return std::make_unique<agent::Agent>(io, cfg, std::move(ad));
  }
  json call(agent::Agent& a, const std::string& method, json params = json::object(), bool root = true) {
    control::Peer p;
    p.uid = root ? 0 : 1000;
    p.may_write = root;
    return a.handle({{"v", 1}, {"method", method}, {"params", params}}, p, nullptr);
  }
  boost::asio::io_context io;
  agent::Adapters ad;
  fakes::FakeDiscovery* runtime;
  fakes::FakeFlowSource* flows;
  store::MemoryStateStore* store;
  fakes::FakeAddressWatcher* addrs;
};
struct AgentFixture : ::testing::Test, Rig {};
}  // namespace

TEST_F(AgentFixture, LearnsEdgesBetweenWorkloadsAndPersists) {
  auto a = make();
  ASSERT_TRUE(a->start());
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));
  flows->emit(tcp("10.0.0.3", "10.0.0.4", 8080));
  ASSERT_EQ(a->state().graph.edges().size(), 1u);
  const auto& [k, e] = *a->state().graph.edges().begin();
  EXPECT_EQ(k, (topology::EdgeKey{"web", "api", Proto::tcp, 8080}));
  EXPECT_EQ(e.count, 2u);
  ASSERT_TRUE(a->persist());
  auto saved = topology::state_from_json(*store->doc);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->graph.edges().size(), 1u);

  auto status = call(*a, "status");
  ASSERT_TRUE(status["ok"]);
  EXPECT_EQ(status["result"]["mode"], "learn");
  EXPECT_EQ(status["result"]["workloads"], 2);
  EXPECT_EQ(status["result"]["edges"], 1);
  EXPECT_EQ(status["result"]["pending"], 0);
  auto ws = call(*a, "workloads")["result"];
  ASSERT_EQ(ws.size(), 2u);
  EXPECT_EQ(ws[1]["name"], "web");
  EXPECT_EQ(ws[1]["containers"].size(), 2u);
  EXPECT_EQ(ws[1]["addresses"].size(), 2u);
  EXPECT_EQ(ws[1]["labels"]["app"], "web");
}

TEST_F(AgentFixture, FlowsBeforeDiscoveryAreHeldUntilTheEndpointIsKnown) {
  auto a = make();
  ASSERT_TRUE(a->start());
  flows->emit(tcp("10.0.0.9", "10.0.0.4", 5432));  // 10.0.0.9 not yet discovered
  EXPECT_TRUE(a->state().graph.edges().empty());
  runtime->add(container("d1", "db", {"10.0.0.9"}));
  ASSERT_EQ(a->state().graph.edges().size(), 1u);
  EXPECT_EQ(a->state().graph.edges().begin()->first.src, "db");
}

TEST_F(AgentFixture, AddressesFromInsideTheNamespaceCount) {
  addrs->addrs["a1"] = {ip("fd00::4")};
  auto a = make();
  ASSERT_TRUE(a->start());
  EXPECT_EQ(a->endpoints().resolve(ip("fd00::4")), "api");
  addrs->set("a1", {ip("fd00::44")});
  EXPECT_EQ(a->endpoints().resolve(ip("fd00::44")), "api");
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.0.4")), "api");  // the runtime's address stays
}

TEST_F(AgentFixture, StartReplaysTheConntrackTable) {
  flows->table.push_back(tcp("10.0.0.2", "10.0.0.4", 9000));
  auto a = make();
  ASSERT_TRUE(a->start());
  a->flush_deferred();
  EXPECT_EQ(flows->resyncs, 1);
  EXPECT_TRUE(a->state().graph.find({"web", "api", Proto::tcp, 9000}));
}

TEST_F(AgentFixture, ModeFlagAppliesOnlyToAFreshStateDirectory) {
  agent::AgentConfig cfg;
  cfg.initial_mode = Mode::monitor;
  json saved;
  {
    auto a = make(cfg);
    ASSERT_TRUE(a->start());
    EXPECT_EQ(a->state().modes.global, Mode::monitor);
    ASSERT_TRUE(call(*a, "mode.set", {{"mode", "enforce"}})["ok"]);
    a->stop();
    saved = *store->doc;
  }
  // A restart with a different --mode keeps the mode set through the API.
  Rig again;
  again.store->doc = saved;
  cfg.initial_mode = Mode::learn;
  auto b = again.make(cfg);
  auto st = b->start();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(b->state().modes.global, Mode::enforce);
}

TEST_F(AgentFixture, LearningWindowEndsInTheConfiguredMode) {
  agent::AgentConfig cfg;
  cfg.learn_for = std::chrono::seconds(0);
  cfg.after_learn = Mode::monitor;
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  for (int i = 0; i < 60 && a->state().modes.global != Mode::monitor; ++i) {  // until the periodic scan ran
    io.restart();
    io.run_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(a->state().modes.global, Mode::monitor);
  flows->emit(tcp("10.0.0.4", "10.0.0.2", 22));
  EXPECT_EQ(a->state().graph.pending().size(), 1u);
  auto p = call(*a, "flows.pending")["result"];
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0]["src"], "api");
  EXPECT_EQ(p[0]["dst"], "web");
}

TEST_F(AgentFixture, StatusShowsLearningTimeLeft) {
  agent::AgentConfig cfg;
  cfg.learn_for = std::chrono::seconds(600);
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  auto l = call(*a, "status")["result"]["learning"];
  EXPECT_GT(l["remaining_seconds"].get<int>(), 590);
  EXPECT_TRUE(l.contains("new_edges_per_minute"));
}

TEST_F(AgentFixture, RemovedReplicaKeepsTheWorkloadAndItsEdges) {
  auto a = make();
  ASSERT_TRUE(a->start());
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));
  runtime->remove("w1");
  EXPECT_EQ(a->endpoints().workloads().at("web").size(), 1u);
  runtime->remove("w2");
  EXPECT_FALSE(a->endpoints().is_workload("web"));
  EXPECT_EQ(a->state().graph.edges().size(), 1u);
}

TEST_F(AgentFixture, ApiRejectsBadRequestsAndNonRootWrites) {
  auto a = make();
  ASSERT_TRUE(a->start());
  EXPECT_EQ(call(*a, "nope")["error"]["code"], "unknown_method");
  EXPECT_EQ(call(*a, "mode.set", {{"mode", "enforce"}}, false)["error"]["code"], "forbidden");
  EXPECT_EQ(a->state().modes.global, Mode::learn);
  EXPECT_EQ(call(*a, "mode.set", {{"mode", "block"}})["error"]["code"], "bad_params");
  EXPECT_EQ(call(*a, "topology.export", {{"format", "xml"}})["error"]["code"], "bad_params");
  control::Peer root;
  root.may_write = true;
  EXPECT_EQ(a->handle({{"v", 7}, {"method", "status"}}, root, nullptr)["error"]["code"], "bad_version");
  EXPECT_EQ(a->handle({{"v", 1}}, root, nullptr)["error"]["code"], "malformed");
  EXPECT_TRUE(call(*a, "status", json::object(), false)["ok"]);  // reads are open
}

TEST_F(AgentFixture, PerWorkloadModeOverride) {
  auto a = make();
  ASSERT_TRUE(a->start());
  ASSERT_TRUE(call(*a, "mode.set", {{"mode", "enforce"}, {"workload", "api"}})["ok"]);
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));
  EXPECT_TRUE(a->state().graph.edges().empty());
  EXPECT_EQ(a->state().graph.pending().size(), 1u);
  auto ws = call(*a, "workloads")["result"];
  EXPECT_EQ(ws[0]["mode"], "enforce");
}

TEST_F(AgentFixture, NewWorkloadWhileEnforcingGetsItsOwnLearningWindow) {
  agent::AgentConfig cfg;
  cfg.new_workload_learn_for = std::chrono::seconds(3600);
  auto a = make(cfg);
  ASSERT_TRUE(a->start());  // web and api are learned first, then the node enforces
  ASSERT_TRUE(call(*a, "mode.set", {{"mode", "enforce"}})["ok"]);
  runtime->add(container("n1", "newcomer", {"10.0.0.20"}));
  EXPECT_EQ(a->state().modes.of("newcomer"), Mode::learn);
  EXPECT_EQ(a->state().modes.of("web"), Mode::enforce);
  EXPECT_TRUE(a->state().workload_learn_until.count("newcomer"));
  flows->emit(tcp("10.0.0.20", "10.0.0.4", 9000));  // newcomer -> api: api enforces, so pending
  flows->emit(tcp("10.0.0.3", "10.0.0.20", 7000));  // web enforces too
  EXPECT_TRUE(a->state().graph.edges().empty()) << "the stricter end (enforce) decides";
}

TEST_F(AgentFixture, NewWorkloadIsEnforcedAtOnceByDefault) {
  agent::AgentConfig cfg;
  cfg.initial_mode = Mode::enforce;
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  runtime->add(container("n1", "newcomer", {"10.0.0.20"}));
  EXPECT_EQ(a->state().modes.of("newcomer"), Mode::enforce);
}

TEST_F(AgentFixture, QuietLearningWorkloadIsPromotedToEnforce) {
  agent::AgentConfig cfg;
  cfg.auto_promote_after = std::chrono::seconds(1);
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  io.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(a->state().modes.of("web"), Mode::learn) << "not quiet for long enough yet";
  for (int i = 0; i < 60 && a->state().modes.of("web") != Mode::enforce; ++i) {  // the next scan, bounded
    io.restart();
    io.run_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(a->state().modes.of("web"), Mode::enforce);
  EXPECT_EQ(a->state().modes.of("api"), Mode::enforce);
}

// Cluster mode: this node's endpoints are announced; other nodes' are named in the graph and rules.
TEST_F(AgentFixture, ClusterPeersAreNamedAndCannotClaimLocalAddresses) {
  auto cl = std::make_unique<fakes::FakeCluster>();
  auto* cluster = cl.get();
  ad.cluster = std::move(cl);
  ad.writer = std::make_unique<fakes::FakeWriter>();
  auto a = make();
  ASSERT_TRUE(a->start());
  ASSERT_EQ(cluster->published.size(), 3u);
  EXPECT_EQ(cluster->published["w1"].workload, "web");
  EXPECT_EQ(cluster->published["w1"].addresses, std::vector<IpAddr>{ip("10.0.0.2")});

  cluster->upsert("node-b", "c9", "db", "10.9.0.9");
  flows->emit(tcp("10.0.0.2", "10.9.0.9", 5432));
  EXPECT_EQ(a->state().graph.edges().count({"web", "db", Proto::tcp, 5432}), 1u) << "a peer on another node, by name";
  a->apply_now();
  ASSERT_TRUE(a->applied_model());
  EXPECT_EQ(a->applied_model()->ep4.count(ip("10.9.0.9")), 1u) << "and in the rules";

  cluster->upsert("node-b", "evil", "intruder", "10.0.0.4");  // claims api's address
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.0.4")), "api") << "what this node discovered wins";

  runtime->remove("a1");
  EXPECT_EQ(cluster->withdrawn, std::vector<std::string>{"a1"});
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.0.4")), "intruder") << "the claim stands once the local owner is gone";

  cluster->remove("node-b", "c9");
  EXPECT_EQ(a->endpoints().resolve(ip("10.9.0.9")), "world") << "a departed peer is world again";
  auto st = call(*a, "status")["result"];
  EXPECT_EQ(st["remote_endpoints"], 1);
  EXPECT_EQ(call(*a, "workloads")["result"].size(), 2u) << "web and the intruder; api and db are gone";
}

// Cluster mode: an operator's decision on any node is shared, and one made elsewhere applies here.
TEST_F(AgentFixture, ClusterDecisionsAreSharedAndApplied) {
  auto cl = std::make_unique<fakes::FakeCluster>();
  auto* cluster = cl.get();
  ad.cluster = std::move(cl);
  ad.writer = std::make_unique<fakes::FakeWriter>();
  agent::AgentConfig cfg;
  cfg.initial_mode = Mode::enforce;
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  cluster->upsert("node-b", "c9", "db", "10.9.0.9");
  flows->emit(tcp("10.0.0.2", "10.9.0.9", 5432));  // blocked here, pending
  ASSERT_EQ(a->state().graph.pending().size(), 1u);
  ASSERT_TRUE(call(*a, "flows.approve", {{"all", true}, {"comment", "ticket 7"}, {"for_seconds", 3600}})["ok"]);
  ASSERT_EQ(cluster->decisions.size(), 1u);
  const auto& d = cluster->decisions[0];
  EXPECT_EQ(d.src + ">" + d.dst + ":" + d.state, "web>db:approved");
  EXPECT_EQ(d.port, 5432);
  EXPECT_EQ(d.comment, "ticket 7");
  EXPECT_FALSE(d.until.empty()) << "the expiry travels too";

  // Made on node B: api -> db approved here, web -> db removed here, api -> web denied here.
  flows->emit(tcp("10.0.0.4", "10.0.0.2", 8080));  // pending api -> web
  cluster->decision({"api", "db", Proto::tcp, 5432, "approved", "", "from b", "node-b"});
  cluster->decision({"web", "db", Proto::tcp, 5432, "removed", "", "", "node-b"});
  cluster->decision({"api", "web", Proto::tcp, 8080, "denied", "", "", "node-b"});
  const auto& g = a->state().graph;
  ASSERT_TRUE(g.find({"api", "db", Proto::tcp, 5432}));
  EXPECT_EQ(g.find({"api", "db", Proto::tcp, 5432})->state, topology::EdgeState::approved);
  EXPECT_FALSE(g.find({"web", "db", Proto::tcp, 5432}));
  ASSERT_TRUE(g.find({"api", "web", Proto::tcp, 8080}));
  EXPECT_EQ(g.find({"api", "web", Proto::tcp, 8080})->state, topology::EdgeState::denied);
  EXPECT_TRUE(g.pending().empty()) << "a decision settles the pending flow";
  EXPECT_EQ(cluster->decisions.size(), 1u) << "decisions from elsewhere are not echoed back";

  // Removed here: shared as a removal.
  ASSERT_TRUE(call(*a, "edges.remove", {{"src", "api"}, {"dst", "db"}, {"proto", "tcp"}, {"port", 5432}})["ok"]);
  ASSERT_EQ(cluster->decisions.size(), 2u);
  EXPECT_EQ(cluster->decisions[1].state, "removed");
}

// A restarted agent enforces the remote endpoints it last knew until the cluster has been read again;
// then those no longer announced go.
TEST_F(AgentFixture, RemoteEndpointsFromTheStateHoldUntilTheClusterIsRead) {
  std::optional<json> saved;
  {
    Rig first;
    auto cl = std::make_unique<fakes::FakeCluster>();
    auto* cluster = cl.get();
    first.ad.cluster = std::move(cl);
    auto a = first.make();
    ASSERT_TRUE(a->start());
    cluster->upsert("node-b", "c9", "db", "10.9.0.9");
    cluster->upsert("node-b", "c8", "cache", "10.9.0.8");
    ASSERT_TRUE(a->persist());
    saved = first.store->doc;
  }
  store->doc = saved;
  auto cl = std::make_unique<fakes::FakeCluster>();
  auto* cluster = cl.get();
  ad.cluster = std::move(cl);
  ad.writer = std::make_unique<fakes::FakeWriter>();
  auto a = make();
  ASSERT_TRUE(a->start());  // the cluster store has said nothing yet (etcd down)
  EXPECT_EQ(a->endpoints().resolve(ip("10.9.0.9")), "db");
  a->apply_now();
  ASSERT_TRUE(a->applied_model());
  EXPECT_EQ(a->applied_model()->ep4.count(ip("10.9.0.9")), 1u) << "in the first ruleset, not world";

  cluster->upsert("node-b", "c9", "db", "10.9.0.9");  // etcd read again: c9 is still there, c8 is not
  cluster->handler(ClusterEvent{ClusterEvent::Kind::synced, {}, {}});
  EXPECT_EQ(a->endpoints().resolve(ip("10.9.0.9")), "db");
  EXPECT_EQ(a->endpoints().resolve(ip("10.9.0.8")), "world") << "gone from etcd while this agent was away";
  EXPECT_EQ(call(*a, "status")["result"]["remote_endpoints"], 1);
}

// `host`, `world` and the external networks' names are reserved: a container, a named namespace or
// another node never takes one (it would share that identity's id, and so its edges).
TEST_F(AgentFixture, ReservedNamesAreNeverWorkloads) {
  auto ns = std::make_unique<fakes::FakeDiscovery>();
  EndpointInfo partner;
  partner.kind = EndpointKind::netns;
  partner.id = "netns:partner";
  partner.name = "partner";
  partner.addresses = {ip("10.0.1.2")};
  ns->initial = {partner};
  ad.netns = std::move(ns);
  auto cl = std::make_unique<fakes::FakeCluster>();
  auto* cluster = cl.get();
  ad.cluster = std::move(cl);
  runtime->initial.push_back(container("c1", "corp", {"10.0.0.7"}));
  runtime->initial.push_back(container("c2", "world", {"10.0.0.8"}));
  agent::AgentConfig cfg;
  cfg.external = {{*Cidr::parse("192.0.2.0/24"), "corp"}, {*Cidr::parse("198.51.100.0/24"), "partner"}};
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.0.7")), "workload-corp");
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.0.8")), "workload-world");
  EXPECT_EQ(a->endpoints().resolve(ip("10.0.1.2")), "workload-partner") << "a named namespace too";
  EXPECT_EQ(a->endpoints().resolve(ip("192.0.2.9")), "corp");

  cluster->upsert("node-b", "c9", "corp", "10.9.0.9");
  EXPECT_EQ(a->endpoints().resolve(ip("10.9.0.9")), "world") << "another node cannot announce one either";
  for (const char* n : {"corp", "partner", "world"}) {
    EXPECT_FALSE(a->endpoints().is_workload(n)) << n;
    EXPECT_EQ(a->state().graph.workloads().count(n), 0u) << n;
  }
}

namespace {
std::size_t pending_from(const topology::Graph& g, const std::string& src) {
  std::size_t n = 0;
  for (const auto& [k, p] : g.pending()) n += k.src == src;
  return n;
}
}  // namespace

// A port scan against an enforced workload: thousands of distinct ports from one source, each packet
// logged as dropped. The pending table and the state file stay within the per-source bound (1,000 by
// default); the least recently seen of the scanner's flows go, counted, and another source's flow stays.
TEST_F(AgentFixture, APortScanCannotGrowThePendingTableBeyondItsBound) {
  auto al = std::make_unique<fakes::FakeAlertSource>();
  auto* alerts = al.get();
  ad.alerts = std::move(al);
  agent::AgentConfig cfg;
  cfg.initial_mode = Mode::enforce;
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  const auto t0 = Clock::now();
  alerts->log(tcp("10.0.0.4", "10.0.0.2", 8443), t0);  // api -> web: the oldest flow of all
  for (int port = 1; port <= 3000; ++port)
    alerts->log(tcp("10.0.0.2", "10.0.0.4", static_cast<std::uint16_t>(port)), t0 + std::chrono::seconds(port));
  const auto& g = a->state().graph;
  EXPECT_EQ(pending_from(g, "web"), 1000u);
  EXPECT_EQ(pending_from(g, "api"), 1u) << "the scanner evicts its own flows first";
  EXPECT_FALSE(g.pending().count({"web", "api", Proto::tcp, 2000})) << "the least recently seen went";
  EXPECT_TRUE(g.pending().count({"web", "api", Proto::tcp, 2001}));
  EXPECT_TRUE(g.pending().count({"web", "api", Proto::tcp, 3000}));
  auto st = call(*a, "status")["result"];
  EXPECT_EQ(st["pending"], 1001);
  EXPECT_EQ(st["counters"]["pending_evicted"], 2000);
  ASSERT_TRUE(a->persist());
  auto saved = topology::state_from_json(*store->doc);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->graph.pending().size(), 1001u) << "the state file is bounded too";
}

// A state file written before the bound (or with a larger one) is brought within it at start.
TEST_F(AgentFixture, PendingFlowsLoadedBeyondTheBoundAreTrimmedAtStart) {
  topology::State s;
  s.modes.global = Mode::enforce;
  auto doc = topology::state_to_json(s);
  const auto t0 = std::chrono::floor<std::chrono::seconds>(Clock::now()) - std::chrono::hours(1);
  for (int port = 1; port <= 1500; ++port) {
    const auto at = topology::format_time(t0 + std::chrono::seconds(port));
    doc["pending"].push_back({{"src", "web"}, {"dst", "api"}, {"proto", "tcp"}, {"port", port}, {"id", port},
                              {"count", 1}, {"first_seen", at}, {"last_seen", at}});
  }
  store->doc = doc;
  auto a = make();
  ASSERT_TRUE(a->start());
  EXPECT_EQ(a->state().graph.pending().size(), 1000u);
  EXPECT_FALSE(a->state().graph.pending().count({"web", "api", Proto::tcp, 500}));
  EXPECT_TRUE(a->state().graph.pending().count({"web", "api", Proto::tcp, 501}));
  EXPECT_EQ(call(*a, "status")["result"]["counters"]["pending_evicted"], 500);
}

// Alerts are rate-limited per source workload in front of the sinks: a scanner's flood is cut to its
// bucket (a burst of 50 by default), and another workload's alert still gets through.
TEST_F(AgentFixture, OneScannerCannotHideAnotherWorkloadsAlerts) {
  auto al = std::make_unique<fakes::FakeAlertSource>();
  auto* alerts = al.get();
  ad.alerts = std::move(al);
  std::vector<topology::Alert> sent;
  ad.sinks.push_back(std::make_unique<fakes::FakeSink>(&sent));
  agent::AgentConfig cfg;
  cfg.initial_mode = Mode::enforce;
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  for (int port = 1; port <= 1000; ++port) alerts->log(tcp("10.0.0.2", "10.0.0.4", static_cast<std::uint16_t>(port)));
  alerts->log(tcp("10.0.0.4", "10.0.0.2", 22));  // api -> web
  std::size_t from_web = 0, from_api = 0;
  for (const auto& x : sent) (x.edge.src == "web" ? from_web : from_api) += 1;
  EXPECT_EQ(from_api, 1u) << "the other workload's alert is emitted";
  EXPECT_GE(from_web, 50u);
  EXPECT_LE(from_web, 60u) << "the burst, plus what refilled while the test ran";
  auto st = call(*a, "status")["result"];
  EXPECT_EQ(st["counters"]["alerts_rate_limited"], 1000 - from_web);
  EXPECT_EQ(st["alerts_rate_limited_by_workload"], (json{{"web", 1000 - from_web}}));
  EXPECT_EQ(st["counters"]["alerts"], 1001) << "every alert is still counted";
}

// Every counter in `status` is declared once (topology/counters.hpp), with its meaning on /metrics, and
// every declared one is exported (with every adapter present).
TEST_F(AgentFixture, EveryCounterIsDeclaredOnceAndExported) {
  ad.alerts = std::make_unique<fakes::FakeAlertSource>();
  ad.writer = std::make_unique<fakes::FakeWriter>();
  ad.cluster = std::make_unique<fakes::FakeCluster>();
  ad.netns = std::make_unique<fakes::FakeDiscovery>();
  agent::AgentConfig cfg;
  cfg.socket_path = "/tmp/topowall-agent-test-" + std::to_string(getpid()) + ".sock";
  auto a = make(cfg);
  ASSERT_TRUE(a->start());
  const auto st = call(*a, "status")["result"];
  const auto text = topology::prometheus_text(st);
  std::set<std::string> shown, declared;
  for (const auto& [key, v] : st["counters"].items()) shown.insert(key);
  for (const auto& c : topology::counter_table()) declared.insert(std::string(c.name));
  EXPECT_EQ(shown, declared) << "status.counters and topology/src/counters.cpp differ";
  for (const auto& c : topology::counter_table()) {
    const auto name = "topowall_" + std::string(c.name) + (c.gauge ? "" : "_total");
    EXPECT_NE(text.find("# HELP " + name + " " + std::string(c.help) + "\n"), std::string::npos) << c.name;
    EXPECT_NE(text.find("# TYPE " + name + (c.gauge ? " gauge" : " counter")), std::string::npos) << c.name;
  }
  a->stop();
}

// Bridged containers reach the inet hooks only with br_netfilter's knobs on. Off: status says so (and
// /healthz, which reads it, answers 503: metrics_server_test); with set_bridge_netfilter the agent turns
// them on itself; a missing knob (module not loaded) stays off.
TEST_F(AgentFixture, BridgeNetfilterOffIsReportedAndSetWhenAsked) {
  const auto dir = ::testing::TempDir() + "topowall-bridge-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  auto write = [&](const char* knob, const char* v) { std::ofstream(dir + "/" + knob) << v; };
  auto read = [&](const char* knob) {
    std::string v;
    std::ifstream(dir + "/" + knob) >> v;
    return v;
  };
  write("bridge-nf-call-iptables", "0\n");
  write("bridge-nf-call-ip6tables", "1\n");
  agent::AgentConfig cfg;
  cfg.bridge_sysctl_dir = dir;
  {
    auto a = make(cfg);
    ASSERT_TRUE(a->start());
    EXPECT_EQ(call(*a, "status")["result"]["bridge_netfilter"], false) << "one knob off is enough";
    EXPECT_EQ(read("bridge-nf-call-iptables"), "0") << "not asked to change it";
  }
  Rig second;
  cfg.set_bridge_netfilter = true;
  auto b = second.make(cfg);
  ASSERT_TRUE(b->start());
  EXPECT_EQ(read("bridge-nf-call-iptables"), "1");
  EXPECT_EQ(call(*b, "status")["result"]["bridge_netfilter"], true);
  std::filesystem::remove_all(dir);
  Rig third;
  auto c = third.make(cfg);
  ASSERT_TRUE(c->start());
  EXPECT_EQ(call(*c, "status")["result"]["bridge_netfilter"], false) << "br_netfilter not loaded: nothing to set";
}
