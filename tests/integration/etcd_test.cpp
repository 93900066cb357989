// Cluster mode against a real etcd (etcd-server) on loopback, started by the
// test on its own ports and data directory. Skipped when etcd is not installed.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <thread>

#include "agent/agent.hpp"
#include "cluster/etcd_store.hpp"
#include "conntrack/ct_listener.hpp"
#include "netns/netns_watcher.hpp"
#include "nflog/nflog.hpp"
#include "nft/writer.hpp"
#include "rtnl/address_watcher.hpp"
#include "etcd_lab.hpp"
#include "lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {

struct EtcdTlsLab : EtcdLab {
  EtcdTlsLab() : EtcdLab(Kind::tls) {}
};

// One agent as one node of a cluster, as users run it: with its own table (which is also what makes the
// kernel track the lab's connections: a namespace tracks only while a rule there uses conntrack).
struct NodeTables {
  std::string names[2];
  explicit NodeTables(const std::string& tag) {
    for (int i = 0; i < 2; ++i) names[i] = "topowall_it" + tag + "_" + char('a' + i) + std::to_string(getpid());
  }
  ~NodeTables() {  // also when an assertion ends the test early
    for (const auto& t : names) drop_tables(t);
  }
};

std::unique_ptr<agent::Agent> cluster_node(boost::asio::io_context& io, const std::string& url, const std::string& table,
                                           int i, const std::string& name, const std::string& prefix, Mode mode,
                                           const std::string& range) {
  agent::AgentConfig cfg;
  cfg.initial_mode = mode;
  cfg.settle = std::chrono::milliseconds(300);
  cfg.ruleset.table = table;
  cfg.ruleset.nflog_group = static_cast<std::uint16_t>(5500 + i * 100 + getpid() % 100);
  // Two "nodes" share this one kernel: each one's guard would take the other's container ports for
  // unclassified ones. On a real cluster every node has its own kernel and guard.
  cfg.ruleset.guard = false;
  agent::Adapters ad;
  ad.store = std::make_unique<store::MemoryStateStore>();
  ad.netns = std::make_unique<netns::NetnsWatcher>(io, netns::NetnsOptions{"/run/netns", "", prefix});
  ad.flows = std::make_unique<conntrack::CtListener>(io);
  ad.addresses = std::make_unique<rtnl::RtnlAddressWatcher>(io);
  auto w = std::make_unique<nft::NftWriter>();
  EXPECT_TRUE(w->open());
  ad.writer = std::move(w);
  ad.alerts = std::make_unique<nflog::NflogListener>(io, cfg.ruleset.nflog_group);
  ad.conntrack_delete = conntrack::delete_conntrack;
  cluster::EtcdOptions eo{url, name};
  eo.ranges = {*Cidr::parse(range)};  // both "nodes" share one lab subnet here: each speaks for its own address
  ad.cluster = std::make_unique<cluster::EtcdStore>(io, eo);
  auto a = std::make_unique<agent::Agent>(io, cfg, std::move(ad));
  EXPECT_TRUE(a->start());
  return a;
}

nlohmann::json call(agent::Agent& ag, const std::string& method, nlohmann::json params = nlohmann::json::object()) {
  control::Peer root;
  root.may_write = true;
  return ag.handle({{"v", 1}, {"method", method}, {"params", params}}, root, nullptr);
}

bool ruleset_in_kernel(agent::Agent& ag) {
  return call(ag, "status")["result"]["counters"]["ruleset_applies"].get<int>() >= 1;
}

}  // namespace

TEST_F(EtcdLab, NodesSeeEachOthersEndpointsComeAndGo) {
  boost::asio::io_context io_a, io_b;
  auto a = store(io_a, "node-a"), b = store(io_b, "node-b");
  Seen seen_a, seen_b;
  a->publish(ep("c1", "web", "10.1.0.2"));  // before start: written once connected
  a->start([&](const ClusterEvent& e) { seen_a(e); });
  b->publish(ep("c9", "db", "10.2.0.9"));
  b->start([&](const ClusterEvent& e) { seen_b(e); });
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/c1") && seen_a.eps.count("node-b/c9"); }, {&io_a, &io_b}));
  EXPECT_EQ(seen_b.eps["node-a/c1"], "web@10.1.0.2");
  EXPECT_EQ(seen_a.eps["node-b/c9"], "db@10.2.0.9");
  EXPECT_EQ(seen_a.eps.count("node-a/c1"), 0u) << "a node does not import its own endpoints";

  a->publish(ep("c2", "web", "10.1.0.3"));
  a->publish(ep("c1", "api", "10.1.0.2"));  // the same endpoint under another identity
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/c2") && seen_b.eps["node-a/c1"] == "api@10.1.0.2"; },
                        {&io_a, &io_b}));
  a->withdraw("c2");
  ASSERT_TRUE(run_until([&] { return !seen_b.eps.count("node-a/c2"); }, {&io_a, &io_b}));

  // An operator's decision on node A reaches node B (not A itself), and stays for nodes that come later.
  a->decide({"web", "db", Proto::tcp, 5432, "approved", "", "ticket 9", ""});
  ASSERT_TRUE(run_until([&] { return !seen_b.decisions.empty(); }, {&io_a, &io_b}));
  EXPECT_EQ(seen_b.decisions[0], "web>db tcp/5432 approved by node-a: ticket 9");
  EXPECT_TRUE(seen_a.decisions.empty());
  EXPECT_TRUE(b->stats().connected);
  EXPECT_EQ(b->stats().errors, 0u);

  // A third node starting now reads what exists, then `synced`.
  boost::asio::io_context io_c;
  auto c = store(io_c, "node-c");
  Seen seen_c;
  c->start([&](const ClusterEvent& e) { seen_c(e); });
  ASSERT_TRUE(run_until([&] { return seen_c.synced == 1; }, {&io_a, &io_b, &io_c}));
  EXPECT_EQ(seen_c.eps, (std::map<std::string, std::string>{{"node-a/c1", "api@10.1.0.2"}, {"node-b/c9", "db@10.2.0.9"}}));
  EXPECT_EQ(seen_c.decisions, std::vector<std::string>{"web>db tcp/5432 approved by node-a: ticket 9"});

  // A node that stops cleanly revokes its lease: its endpoints go at once, long before the TTL.
  boost::asio::io_context io_d;
  auto d = store(io_d, "node-d", 30);
  d->publish(ep("d1", "cache", "10.4.0.1"));
  d->start([](const ClusterEvent&) {});
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-d/d1") > 0; }, {&io_a, &io_b, &io_d}));
  d->stop();
  ASSERT_TRUE(run_until([&] { return !seen_b.eps.count("node-d/d1"); }, {&io_b, &io_d}, 3000))
      << "a clean stop left its endpoints for the lease's 30 s";

  // Node A dies (its loop stops: no keepalive, no goodbye): its endpoints go when the lease runs out.
  ASSERT_TRUE(run_until([&] { return !seen_b.eps.count("node-a/c1"); }, {&io_b, &io_c}, 10000))
      << "a dead node's endpoints outlived its lease";
  EXPECT_FALSE(seen_b.eps.count("node-a/c1"));
  EXPECT_TRUE(seen_b.eps.empty());
}

TEST_F(EtcdLab, ARestartedNodeDropsWhatItNoLongerHasAndSurvivesAnEtcdOutage) {
  boost::asio::io_context io_a, io_b;
  Seen seen_b;
  auto b = store(io_b, "node-b");
  b->start([&](const ClusterEvent& e) { seen_b(e); });
  {
    auto a = store(io_a, "node-a", 30);  // its lease outlives this test: only the restart can remove "old"
    a->publish(ep("old", "web", "10.1.0.2"));
    a->start([](const ClusterEvent&) {});
    ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/old"); }, {&io_a, &io_b}));
  }
  // Node A again, within the old lease, without "old": it deletes its stale key at once.
  boost::asio::io_context io_a2;
  auto a2 = store(io_a2, "node-a", 30);
  a2->publish(ep("new", "web", "10.1.0.5"));
  a2->start([](const ClusterEvent&) {});
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/new") && !seen_b.eps.count("node-a/old"); },
                        {&io_a2, &io_b}, 1500))
      << "stale key lingered";

  // etcd goes away and comes back: both reconnect, and what was published is there again.
  kill(etcd, SIGSTOP);
  ASSERT_TRUE(run_until([&] { return !b->stats().connected; }, {&io_a2, &io_b}, 10000));
  EXPECT_EQ(seen_b.eps.count("node-a/new"), 1u) << "remote endpoints stay as last known while etcd is away";
  kill(etcd, SIGCONT);
  ASSERT_TRUE(run_until([&] { return b->stats().connected && a2->stats().connected; }, {&io_a2, &io_b}, 20000));
  EXPECT_GE(b->stats().resyncs, 2u);
  EXPECT_GE(b->stats().errors, 1u);
  EXPECT_EQ(seen_b.eps.count("node-a/new"), 1u);
}

// Two agents as two nodes (one kernel here, so each discovers only its own namespaces): a flow from a
// workload on node A to one on node B is learned by name on both, where each would otherwise see `world`.
TEST_F(EtcdLab, TwoNodesLearnACrossNodeFlowByName) {
  if (auto why = Lab::missing(); !why.empty()) GTEST_SKIP() << why;
  Lab lab("twc", "10.231.7", {"aweb", "bdb"}, 2317);
  ASSERT_TRUE(lab.ok());
  auto net = *Cidr::parse("10.231.7.0/24");
  auto cleared = conntrack::delete_conntrack([&](const FlowTuple& f) { return net.contains(f.src) || net.contains(f.dst); });
  ASSERT_TRUE(cleared) << cleared.error().message;
  NodeTables tables("c");
  boost::asio::io_context io;
  auto a = cluster_node(io, url, tables.names[0], 0, "node-a", "twc-a", Mode::learn, lab.ip("aweb") + "/32");
  auto b = cluster_node(io, url, tables.names[1], 1, "node-b", "twc-b", Mode::learn, lab.ip("bdb") + "/32");
  auto status = [](agent::Agent& ag) { return call(ag, "status")["result"]; };
  ASSERT_TRUE(run_until([&] {
    return status(*a)["remote_endpoints"] == 1 && status(*b)["remote_endpoints"] == 1 && ruleset_in_kernel(*a) &&
           ruleset_in_kernel(*b);
  }, {&io})) << status(*a).dump() << status(*b).dump();
  EXPECT_EQ(a->endpoints().resolve(*IpAddr::parse(lab.ip("bdb"))), "twc-bdb");

  Server db(lab.ns_path("bdb"), 5432);
  ASSERT_TRUE(tcp_connect(lab.ns_path("aweb"), lab.ip("bdb"), 5432));
  const topology::EdgeKey edge{"twc-aweb", "twc-bdb", Proto::tcp, 5432};
  ASSERT_TRUE(run_until([&] { return a->state().graph.find(edge) && b->state().graph.find(edge); }, {&io}));
  for (auto* ag : {a.get(), b.get()})
    for (const auto& [k, e] : ag->state().graph.edges())
      EXPECT_TRUE(k.src != "world" && k.dst != "world") << k.to_string();
  EXPECT_TRUE(status(*a)["cluster_connected"]);
}

// etcd as clusters run it: TLS, and client certificates required.
TEST_F(EtcdTlsLab, VerifiesEtcdAndPresentsAClientCertificate) {
  const TlsFiles good = client_tls();
  boost::asio::io_context io;
  auto a = store(io, "node-a", 2, good), b = store(io, "node-b", 2, good);
  Seen seen_b;
  a->publish(ep("c1", "web", "10.1.0.2"));
  a->start([](const ClusterEvent&) {});
  b->start([&](const ClusterEvent& e) { seen_b(e); });
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/c1") > 0; }, {&io})) << "over TLS";
  EXPECT_TRUE(b->stats().connected);

  // No client certificate: etcd refuses. An etcd the CA does not vouch for: we refuse.
  auto anon = store(io, "node-x", 2, {dir + "/ca.pem", "", ""});
  auto fooled = store(io, "node-y", 2, {dir + "/other.pem", dir + "/client.pem", dir + "/client.key"});
  anon->start([](const ClusterEvent&) {});
  fooled->start([](const ClusterEvent&) {});
  ASSERT_TRUE(run_until([&] { return anon->stats().errors >= 1 && fooled->stats().errors >= 1; }, {&io}));
  EXPECT_FALSE(anon->stats().connected);
  EXPECT_FALSE(fooled->stats().connected);

  // Unusable files are named at start-up.
  cluster::EtcdOptions o{url, "node-z"};
  o.tls = {dir + "/missing.pem", "", ""};
  auto bad = cluster::EtcdStore(io, o).validate();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("missing.pem"), std::string::npos) << bad.error().message;
}

// Enforcing on both nodes, a cross-node flow crosses two rulesets: approving it once, on either node,
// opens both (the decision travels through etcd).
TEST_F(EtcdLab, OneApprovalOpensACrossNodeFlowOnBothNodes) {
  if (auto why = Lab::missing(); !why.empty()) GTEST_SKIP() << why;
  Lab lab("twd", "10.231.8", {"aweb", "bdb"}, 2318);
  ASSERT_TRUE(lab.ok());
  auto net = *Cidr::parse("10.231.8.0/24");
  auto cleared = conntrack::delete_conntrack([&](const FlowTuple& f) { return net.contains(f.src) || net.contains(f.dst); });
  ASSERT_TRUE(cleared) << cleared.error().message;
  NodeTables tables("d");
  boost::asio::io_context io;
  {
    auto a = cluster_node(io, url, tables.names[0], 0, "node-a", "twd-a", Mode::enforce, lab.ip("aweb") + "/32");
    auto b = cluster_node(io, url, tables.names[1], 1, "node-b", "twd-b", Mode::enforce, lab.ip("bdb") + "/32");
    ASSERT_TRUE(run_until([&] {
      return call(*a, "status")["result"]["remote_endpoints"] == 1 && call(*b, "status")["result"]["remote_endpoints"] == 1 &&
             ruleset_in_kernel(*a) && ruleset_in_kernel(*b);
    }, {&io}));
    Server db(lab.ns_path("bdb"), 5432);
    EXPECT_FALSE(tcp_connect(lab.ns_path("aweb"), lab.ip("bdb"), 5432)) << "unknown: blocked";
    // Whichever ruleset the kernel runs first drops it, so that node holds the pending flow.
    agent::Agent* holder = nullptr;
    ASSERT_TRUE(run_until([&] {
      for (auto* ag : {a.get(), b.get()})
        if (call(*ag, "flows.pending")["result"].size() == 1) holder = ag;
      return holder != nullptr;
    }, {&io}));
    agent::Agent* other = holder == a.get() ? b.get() : a.get();
    auto applies = [](agent::Agent& ag) { return call(ag, "status")["result"]["counters"]["ruleset_applies"].get<int>(); };
    const int before = applies(*other);
    ASSERT_TRUE(call(*holder, "flows.approve", {{"all", true}})["ok"]);  // on one node only
    const topology::EdgeKey edge{"twd-aweb", "twd-bdb", Proto::tcp, 5432};
    ASSERT_TRUE(run_until([&] { return other->state().graph.find(edge).has_value(); }, {&io})) << "the decision travelled";
    // The other node programs it in the loop turn after the graph changed: wait for that, not longer.
    ASSERT_TRUE(run_until([&] { return applies(*other) > before; }, {&io}));
    EXPECT_EQ(other->state().graph.find(edge)->state, topology::EdgeState::approved);
    EXPECT_TRUE(tcp_connect(lab.ns_path("aweb"), lab.ip("bdb"), 5432)) << "both rulesets let it through";
    EXPECT_FALSE(tcp_connect(lab.ns_path("bdb"), lab.ip("aweb"), 5432)) << "the reverse stays blocked";
  }
}
