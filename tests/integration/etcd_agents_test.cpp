// Agents (fake discovery, flows and kernel; a real etcd with RBAC) as nodes of a cluster: the operator's
// CLI writes decisions with its own etcd credential, and a restarted agent keeps its remote endpoints
// while etcd is down. No network namespaces and no nftables: these need no kernel lock.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/agent.hpp"
#include "etcd_lab.hpp"
#include "fakes.hpp"
#include "store/state_store.hpp"

using namespace topowall;
using namespace topowall::testing;
using nlohmann::json;

namespace {

struct EtcdAgentLab : EtcdLab {
  EtcdAgentLab() : EtcdLab(Kind::rbac) {}

  struct Node {
    fakes::FakeFlowSource* flows = nullptr;
    fakes::FakeAlertSource* alerts = nullptr;  // enforcing: a blocked flow reaches the agent as a logged drop
    fakes::FakeWriter* writer = nullptr;
    std::unique_ptr<agent::Agent> agent;
  };
  // One agent as node `name`, running `workload` at `addr`, its state in <dir>/state-<name>.
  Node node(boost::asio::io_context& io, const std::string& name, const std::string& workload, const char* addr,
            const std::string& socket = "") {
    Node n;
    agent::AgentConfig cfg;
    cfg.initial_mode = Mode::enforce;
    cfg.settle = std::chrono::milliseconds(200);
    cfg.socket_path = socket;
    agent::Adapters ad;
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {fakes::container(name + "-" + workload, workload, {addr})};
    ad.runtime = std::move(rt);
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    n.flows = fl.get();
    ad.flows = std::move(fl);
    auto al = std::make_unique<fakes::FakeAlertSource>();
    n.alerts = al.get();
    ad.alerts = std::move(al);
    auto st = std::make_unique<store::FileStateStore>(dir + "/state-" + name);
    EXPECT_TRUE(st->prepare());
    ad.store = std::move(st);
    auto w = std::make_unique<fakes::FakeWriter>();
    n.writer = w.get();
    ad.writer = std::move(w);
    auto o = options(name, 2, client_tls());
    o.auth = {name, password_file(name)};
    ad.cluster = std::make_unique<cluster::EtcdStore>(io, o);
    n.agent = std::make_unique<agent::Agent>(io, cfg, std::move(ad));
    EXPECT_TRUE(n.agent->start());
    return n;
  }
  static json call(agent::Agent& a, const std::string& method, json params = json::object()) {
    control::Peer root;
    root.may_write = true;
    return a.handle({{"v", 1}, {"method", method}, {"params", params}}, root, nullptr);
  }
  static int remote(agent::Agent& a) { return call(a, "status")["result"].value("remote_endpoints", -1); }
};

}  // namespace

// The operator approves on node A with the CLI and their own etcd credential: A applies it through its
// control socket, B through etcd, though neither agent may write decisions itself.
TEST_F(EtcdAgentLab, TheCliWritesADecisionAsTheOperatorAndBothAgentsApplyIt) {
  boost::asio::io_context io;
  const auto sock = dir + "/a.sock";
  auto a = node(io, "node-a", "web", "10.1.0.2", sock);
  auto b = node(io, "node-b", "db", "10.2.0.9");
  ASSERT_TRUE(run_until([&] { return remote(*a.agent) == 1 && remote(*b.agent) == 1; }, {&io}));
  a.alerts->log(fakes::tcp("10.1.0.2", "10.2.0.9", 5432));
  ASSERT_EQ(a.agent->state().graph.pending().size(), 1u) << "enforcing: web -> db waits for a decision";
  const topology::EdgeKey edge{"web", "db", Proto::tcp, 5432};

  auto cli = [&](const std::string& etcd_flags) {
    std::atomic<bool> done{false};
    std::string out;
    std::thread t([&] {
      out = sh_out(std::string(TOPOWALL_CLI) + " --socket " + sock + " flows approve --all --comment 'ticket 5' " +
                   etcd_flags + " 2>&1; echo rc=$?");
      done = true;
    });
    run_until([&] { return done.load(); }, {&io}, 20000);
    t.join();
    return out;
  };
  // Without etcd flags: applied on A only, and the CLI says so.
  auto local = cli("");
  EXPECT_NE(local.find("applied on this node only"), std::string::npos) << local;
  EXPECT_NE(local.find("rc=0"), std::string::npos) << local;
  ASSERT_TRUE(a.agent->state().graph.find(edge));
  EXPECT_EQ(a.agent->state().graph.find(edge)->state, topology::EdgeState::approved);
  run_until([] { return false; }, {&io}, 500);
  EXPECT_FALSE(b.agent->state().graph.find(edge)) << "node A's role cannot write decisions";

  // The same pending flow again on A, approved with the operator's credential: B applies it through etcd.
  ASSERT_TRUE(call(*a.agent, "edges.remove", {{"src", "web"}, {"dst", "db"}, {"proto", "tcp"}, {"port", 5432}})["ok"]);
  a.alerts->log(fakes::tcp("10.1.0.2", "10.2.0.9", 5432));
  ASSERT_EQ(a.agent->state().graph.pending().size(), 1u);
  auto shared = cli("--etcd " + url + " --etcd-ca " + dir + "/ca.pem --etcd-cert " + dir + "/client.pem --etcd-key " + dir +
                    "/client.key --etcd-user ops --etcd-password-file " + password_file("ops"));
  EXPECT_NE(shared.find("written to etcd"), std::string::npos) << shared;
  EXPECT_NE(shared.find("rc=0"), std::string::npos) << shared;
  ASSERT_TRUE(run_until([&] { return b.agent->state().graph.find(edge).has_value(); }, {&io})) << "the decision travelled";
  EXPECT_EQ(b.agent->state().graph.find(edge)->state, topology::EdgeState::approved);
  EXPECT_EQ(b.agent->state().graph.find(edge)->comment, "ticket 5");
  EXPECT_EQ(a.agent->state().graph.find(edge)->state, topology::EdgeState::approved);

  // A node's credential in the operator's place: etcd refuses, and the CLI says the others do not have it.
  a.alerts->log(fakes::tcp("10.1.0.2", "10.2.0.9", 6000));
  ASSERT_EQ(a.agent->state().graph.pending().size(), 1u);
  auto forged = cli("--etcd " + url + " --etcd-ca " + dir + "/ca.pem --etcd-cert " + dir + "/client.pem --etcd-key " + dir +
                    "/client.key --etcd-user node-a --etcd-password-file " + password_file("node-a"));
  EXPECT_NE(forged.find("permission denied"), std::string::npos) << forged;
  EXPECT_NE(forged.find("rc=1"), std::string::npos) << forged;
  run_until([] { return false; }, {&io}, 500);
  EXPECT_FALSE(b.agent->state().graph.find({"web", "db", Proto::tcp, 6000}));
}

// A restarted agent enforces the remote endpoints it last knew while etcd is down: a peer on another
// node never becomes `world` because etcd is away.
TEST_F(EtcdAgentLab, ARestartedAgentKeepsItsRemoteEndpointsWhileEtcdIsDown) {
  boost::asio::io_context io;
  const auto db = *IpAddr::parse("10.2.0.9");
  {
    auto a = node(io, "node-a", "web", "10.1.0.2");
    auto b = node(io, "node-b", "db", "10.2.0.9");
    ASSERT_TRUE(run_until([&] { return remote(*a.agent) == 1; }, {&io}));
    EXPECT_EQ(a.agent->endpoints().resolve(db), "db");
    ASSERT_TRUE(a.agent->persist());
  }
  kill(etcd, SIGTERM);  // etcd is down
  waitpid(etcd, nullptr, 0);
  etcd = 0;

  auto a = node(io, "node-a", "web", "10.1.0.2");
  run_until([] { return false; }, {&io}, 300);
  EXPECT_FALSE(call(*a.agent, "status")["result"].value("cluster_synced", true)) << "etcd has not been read";
  EXPECT_EQ(a.agent->endpoints().resolve(db), "db") << "the last known remote endpoint, not world";
  a.agent->apply_now();
  ASSERT_FALSE(a.writer->models.empty());
  EXPECT_EQ(a.writer->last().ep4.count(db), 1u) << "and in the compiled ruleset";
  EXPECT_EQ(remote(*a.agent), 1);
}
