// Cluster trust against a real etcd with RBAC on (deploy/etcd-rbac.sh: a user and role per node, an
// operator role for decisions), TLS and --client-cert-auth: what etcd refuses, and what every reader
// refuses again. No network namespaces and no nftables: these need no kernel lock.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/agent.hpp"
#include "cluster/etcd_client.hpp"
#include "common/http_stream.hpp"
#include "etcd_lab.hpp"
#include "fakes.hpp"
#include "store/state_store.hpp"

using namespace topowall;
using namespace topowall::testing;
using nlohmann::json;

namespace {

struct EtcdRbacLab : EtcdLab {
  EtcdRbacLab() : EtcdLab(Kind::rbac) {}

  cluster::EtcdOptions node_options(const std::string& node, int ttl_s = 2) const {
    auto o = options(node, ttl_s, client_tls());
    o.auth = {node, password_file(node)};
    return o;
  }
  std::unique_ptr<cluster::EtcdStore> node_store(boost::asio::io_context& io, const std::string& node) {
    return store(io, node_options(node));
  }
  // Writes `key` as etcd user `user` (authenticated like the agent), bypassing the store's own rules.
  Result<json> put_as(const std::string& user, const std::string& key, const std::string& value) {
    boost::asio::io_context io;
    cluster::EtcdTarget t{*parse_http_url(url, "2379"), *make_tls_context(client_tls())};
    std::optional<Result<json>> out;
    auto pw = cluster::read_password(password_file(user));
    if (!pw) return pw.error();
    cluster::etcd_authenticate(io, t, user, *pw, [&](Result<std::string> tok) {
      if (!tok) return out.emplace(tok.error()), void();
      json body{{"key", cluster::base64_encode(key)}, {"value", cluster::base64_encode(value)}};
      cluster::etcd_call(io, t, "/v3/kv/put", body, *tok, [&](Result<json> r) { out.emplace(std::move(r)); });
    });
    io.run_for(std::chrono::seconds(10));
    if (!out) return Error{"no answer"};
    return *out;
  }
  static std::string endpoint_value(const std::string& node, const std::string& id, const std::string& addr) {
    return cluster::encode_endpoint({node, id, "intruder", id, {*IpAddr::parse(addr)}});
  }
};

bool refused(const Result<json>& r) { return !r && r.error().message.find("permission denied") != std::string::npos; }

}  // namespace

// etcd itself keeps each node under its own prefix; the store works end to end as an etcd user.
TEST_F(EtcdRbacLab, ANodeMayWriteOnlyUnderItsOwnPrefix) {
  auto other = put_as("node-a", "/topowall/v1/endpoints/node-b/evil", endpoint_value("node-b", "evil", "10.2.0.66"));
  EXPECT_TRUE(refused(other)) << (other ? other->dump() : other.error().message);
  auto ranges = put_as("node-a", "/topowall/v1/ranges/node-b", cluster::encode_ranges("node-b", {*Cidr::parse("10.0.0.0/8")}));
  EXPECT_TRUE(refused(ranges)) << (ranges ? ranges->dump() : ranges.error().message);
  auto own = put_as("node-a", "/topowall/v1/endpoints/node-a/x", endpoint_value("node-a", "x", "10.1.0.9"));
  EXPECT_TRUE(own) << own.error().message << " (the control: node-a's credential works on its own prefix)";

  boost::asio::io_context io;
  auto a = node_store(io, "node-a"), b = node_store(io, "node-b");
  Seen seen_b;
  a->publish(ep("c1", "web", "10.1.0.2"));
  a->start([](const ClusterEvent&) {});
  b->start([&](const ClusterEvent& e) { seen_b(e); });
  ASSERT_TRUE(run_until([&] { return seen_b.eps.count("node-a/c1") > 0; }, {&io})) << "lease, read and watch under RBAC";
  EXPECT_EQ(seen_b.eps["node-a/c1"], "web@10.1.0.2");
  EXPECT_FALSE(seen_b.eps.count("node-a/x")) << "a stale key of a is removed by a itself at start";
  a->stop();  // the revoke needs write access to every key on the lease: its own
  ASSERT_TRUE(run_until([&] { return !seen_b.eps.count("node-a/c1"); }, {&io}, 3000));
  EXPECT_EQ(b->stats().errors, 0u);
}

// A node can write anything under its own prefix, including a value speaking for another node: every
// reader checks the key against the value.
TEST_F(EtcdRbacLab, AValueNamingAnotherNodeIsIgnoredAndCounted) {
  ASSERT_TRUE(put_as("node-a", "/topowall/v1/endpoints/node-a/fake", endpoint_value("node-b", "fake", "10.2.0.66")));
  ASSERT_TRUE(put_as("node-a", "/topowall/v1/endpoints/node-a/renamed", endpoint_value("node-a", "other-id", "10.1.0.66")));
  boost::asio::io_context io;
  auto b = node_store(io, "node-b"), c = node_store(io, "node-c");
  Seen seen_c;
  b->publish(ep("c9", "db", "10.2.0.9"));
  b->start([](const ClusterEvent&) {});
  c->start([&](const ClusterEvent& e) { seen_c(e); });
  ASSERT_TRUE(run_until([&] { return seen_c.eps.count("node-b/c9") > 0; }, {&io}));
  EXPECT_EQ(seen_c.eps, (std::map<std::string, std::string>{{"node-b/c9", "db@10.2.0.9"}}));
  EXPECT_EQ(c->stats().values_refused, 2u);
  // The same through the watch.
  ASSERT_TRUE(put_as("node-a", "/topowall/v1/endpoints/node-a/later", endpoint_value("node-b", "c9", "10.2.0.77")));
  b->publish(ep("c10", "db", "10.2.0.10"));
  ASSERT_TRUE(run_until([&] { return seen_c.eps.count("node-b/c10") > 0; }, {&io}));
  EXPECT_EQ(seen_c.eps["node-b/c9"], "db@10.2.0.9") << "node-b's endpoint is not overwritten from node-a's prefix";
  EXPECT_EQ(c->stats().values_refused, 3u);
}

// A node speaks only for the ranges it announced, and a range another node announced first is not
// its to take.
TEST_F(EtcdRbacLab, ClaimsOutsideTheNodesRangesAreIgnoredAndOverlapsRefused) {
  ranges_of["node-b"] = {*Cidr::parse("10.1.5.0/24"), *Cidr::parse("10.2.0.0/16")};  // overlaps node-a's 10.1.0.0/16
  boost::asio::io_context io;
  auto a = node_store(io, "node-a"), c = node_store(io, "node-c");
  Seen seen_c;
  a->publish({"", "w1", "web", "w1", {*IpAddr::parse("10.1.0.2"), *IpAddr::parse("10.9.9.9")}});
  a->start([](const ClusterEvent&) {});
  c->start([&](const ClusterEvent& e) { seen_c(e); });
  ASSERT_TRUE(run_until([&] { return seen_c.eps.count("node-a/w1") > 0; }, {&io}));
  EXPECT_EQ(seen_c.eps["node-a/w1"], "web@10.1.0.2") << "10.9.9.9 is outside node-a's ranges";
  EXPECT_EQ(c->stats().claims_refused, 1u);

  auto b = node_store(io, "node-b");  // announces later than node-a
  b->publish({"", "d1", "db", "d1", {*IpAddr::parse("10.1.5.5"), *IpAddr::parse("10.2.0.9")}});
  b->start([](const ClusterEvent&) {});
  ASSERT_TRUE(run_until([&] { return seen_c.eps.count("node-b/d1") > 0; }, {&io}));
  EXPECT_EQ(seen_c.eps["node-b/d1"], "db@10.2.0.9") << "10.1.5.0/24 is node-a's: node-b's overlapping range is refused";
  EXPECT_EQ(c->stats().ranges_refused, 1u);
  EXPECT_EQ(c->stats().claims_refused, 2u);

  // node-a leaves (its lease and ranges go): node-b's range stands now, and its claim with it.
  a->stop();
  ASSERT_TRUE(run_until([&] { return seen_c.eps["node-b/d1"] == "db@10.1.5.5,10.2.0.9"; }, {&io}, 3000))
      << seen_c.eps["node-b/d1"];
  EXPECT_FALSE(seen_c.eps.count("node-a/w1"));
}

// Decisions are the operator's: a node's role may only read them.
TEST_F(EtcdRbacLab, DecisionsNeedTheOperatorRole) {
  const ClusterDecision d{"web", "db", Proto::tcp, 5432, "approved", "", "ticket 9", "node-a"};
  const auto key = cluster::decision_key("/topowall/v1/", d);
  auto by_node = put_as("node-a", key, cluster::encode_decision(d));
  EXPECT_TRUE(refused(by_node)) << (by_node ? by_node->dump() : by_node.error().message);

  boost::asio::io_context io;
  auto c = node_store(io, "node-c");
  Seen seen_c;
  c->start([&](const ClusterEvent& e) { seen_c(e); });
  // An agent without a decisions credential keeps them local; one relaying with a node's credential is
  // refused by etcd; one with the operator's credential shares them.
  auto a = node_store(io, "node-a");
  auto relay_opts = node_options("node-b");
  relay_opts.decisions = {"node-b", password_file("node-b")};
  auto forged = store(io, relay_opts);
  auto ops_opts = node_options("node-d");
  ops_opts.decisions = {"ops", password_file("ops")};
  auto relay = store(io, ops_opts);
  for (auto* s : {a.get(), forged.get(), relay.get()}) s->start([](const ClusterEvent&) {});
  ASSERT_TRUE(run_until([&] { return a->stats().connected && forged->stats().connected && relay->stats().connected; }, {&io}));
  EXPECT_FALSE(a->decide(d)) << "no decisions credential: not shared";
  EXPECT_EQ(a->stats().decisions_local, 1u);
  const auto errors = forged->stats().errors;
  EXPECT_TRUE(forged->decide({"api", "db", Proto::tcp, 5432, "approved", "", "", ""}));
  ASSERT_TRUE(run_until([&] { return forged->stats().errors > errors; }, {&io})) << "etcd refuses a node's decision";
  EXPECT_TRUE(relay->decide({"web", "cache", Proto::tcp, 6379, "denied", "", "by ops", ""}));
  ASSERT_TRUE(run_until([&] { return !seen_c.decisions.empty(); }, {&io}));
  EXPECT_EQ(seen_c.decisions, std::vector<std::string>{"web>cache tcp/6379 denied by node-d: by ops"});
}
