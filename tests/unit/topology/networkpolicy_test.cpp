// The NetworkPolicy export: namespaced workloads get their policies in their namespaces, peers elsewhere
// are selected in theirs, and every object passes the Kubernetes API's schemas (offline).
#include <gtest/gtest.h>

#include "k8s_schema.hpp"
#include "topowall/topology/exporters.hpp"

using namespace topowall;
using namespace topowall::topology;
using topowall::testing::k8s_schema_missing;
using topowall::testing::k8s_validate;
using topowall::testing::TempFile;
using topowall::testing::yaml_documents;

namespace {
const TimePoint t0 = Clock::now();

void edge(Graph& g, const char* src, const char* dst, Proto p, int port, EdgeState s = EdgeState::learned) {
  (void)g.observe({src, dst, p, static_cast<std::uint16_t>(port)}, t0, 1, s);
}

Graph cluster_graph() {
  Graph g;
  edge(g, "shop/web", "shop/db", Proto::tcp, 5432);
  edge(g, "tenant-a/web", "shop/api", Proto::tcp, 80);  // the same app name in another namespace
  edge(g, "shop/web", "world", Proto::tcp, 443);
  edge(g, "shop/web", "corp", Proto::udp, 389);
  edge(g, "shop/web", "shop/db", Proto::icmp, 8);
  edge(g, "host", "shop/web", Proto::tcp, 8080);
  edge(g, "shop/db", "world", Proto::tcp, 25, EdgeState::denied);
  edge(g, "legacy", "shop/db", Proto::sctp, 9);
  edge(g, "shop/Web_1", "shop/db", Proto::tcp, 5432);
  edge(g, "shop/bad-", "shop/db", Proto::tcp, 5432);
  return g;
}

const std::vector<NamedNetwork> kNetworks{{*Cidr::parse("10.0.0.0/8"), "corp"}, {*Cidr::parse("fd00::/8"), "corp"}};

const nlohmann::json* policy(const nlohmann::json& docs, const std::string& workload) {
  for (const auto& d : docs)
    if (d["metadata"]["annotations"]["topowall.io/workload"] == workload) return &d;
  return nullptr;
}
}  // namespace

TEST(NetworkPolicyExport, PassesTheKubernetesSchemas) {
  if (auto why = k8s_schema_missing(); !why.empty()) GTEST_SKIP() << why;
  TempFile f(export_networkpolicy(cluster_graph(), "app", kNetworks), "netpol");
  auto r = k8s_validate(f.path);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("objects, 0 problems"), std::string::npos) << r.out;
}

TEST(NetworkPolicyExport, OnePolicyPerWorkloadInItsNamespace) {
  if (auto why = k8s_schema_missing(); !why.empty()) GTEST_SKIP() << why;
  const auto text = export_networkpolicy(cluster_graph(), "app", kNetworks);
  TempFile f(text, "netpol");
  auto docs = yaml_documents(f.path);
  ASSERT_TRUE(docs.is_array()) << docs.dump();
  // shop/web, shop/db, shop/api, tenant-a/web, legacy, shop/Web_1; not host, world, corp, shop/bad-.
  EXPECT_EQ(docs.size(), 6u) << text;
  EXPECT_NE(text.find("# shop/bad-: no pod carries it"), std::string::npos);

  const auto* web = policy(docs, "shop/web");
  ASSERT_TRUE(web) << text;
  EXPECT_EQ((*web)["metadata"]["namespace"], "shop");
  EXPECT_EQ((*web)["metadata"]["name"], "topowall-web");
  EXPECT_EQ((*web)["spec"]["podSelector"]["matchLabels"]["app"], "web");
  const auto& egress = (*web)["spec"]["egress"];
  ASSERT_EQ(egress.size(), 3u) << egress.dump();  // db, world, corp; not the ICMP edge
  const auto* tenant = policy(docs, "tenant-a/web");
  ASSERT_TRUE(tenant);
  EXPECT_EQ((*tenant)["metadata"]["namespace"], "tenant-a");
  EXPECT_EQ((*tenant)["metadata"]["name"], "topowall-web") << "same name, another namespace: another policy";

  // Same namespace: the pod selector alone. Another namespace: both selectors in one peer.
  bool db = false, world = false, corp = false;
  for (const auto& rule : egress) {
    const auto& to = rule["to"];
    if (to[0].contains("podSelector")) {
      db = to[0]["podSelector"]["matchLabels"]["app"] == "db" && !to[0].contains("namespaceSelector");
      EXPECT_EQ(rule["ports"][0]["port"], 5432);
    } else if (to[0]["ipBlock"]["cidr"] == "0.0.0.0/0") {
      world = to.size() == 2 && to[1]["ipBlock"]["cidr"] == "::/0" && rule["ports"][0]["port"] == 443;
    } else {
      corp = to.size() == 2 && to[0]["ipBlock"]["cidr"] == "10.0.0.0/8" && to[1]["ipBlock"]["cidr"] == "fd00::/8" &&
             rule["ports"][0]["protocol"] == "UDP";
    }
  }
  EXPECT_TRUE(db && world && corp) << egress.dump();
  const auto* api = policy(docs, "shop/api");
  ASSERT_TRUE(api);
  const auto& from = (*api)["spec"]["ingress"][0]["from"][0];
  EXPECT_EQ(from["podSelector"]["matchLabels"]["app"], "web");
  EXPECT_EQ(from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "tenant-a");
  EXPECT_TRUE((*web)["spec"]["ingress"].empty()) << "host is not expressible, and nothing else reaches web";

  // A name that is not a DNS subdomain keeps its own policy name, not another's.
  const auto* upper = policy(docs, "shop/Web_1");
  ASSERT_TRUE(upper);
  EXPECT_EQ((*upper)["metadata"]["name"].get<std::string>().rfind("topowall-web-1-", 0), 0u);
  EXPECT_EQ((*upper)["spec"]["podSelector"]["matchLabels"]["app"], "Web_1");
  const auto* legacy = policy(docs, "legacy");
  ASSERT_TRUE(legacy);
  EXPECT_FALSE((*legacy)["metadata"].contains("namespace")) << "a plain name has no namespace";
  // Denied edges are left out.
  EXPECT_EQ(text.find("port: 25"), std::string::npos);
}

// The validator is not vacuous: what the API server would refuse, it refuses.
TEST(NetworkPolicyExport, TheSchemaCheckRefusesABrokenPolicy) {
  if (auto why = k8s_schema_missing(); !why.empty()) GTEST_SKIP() << why;
  TempFile f(
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: topowall-Web, namespace: shop}\n"
      "spec:\n  podSelector:\n    matchLabels: {app: \"shop/web\"}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.1/8}}]\n"
      "    ports: [{protocol: ICMP, port: 8}]\n  egres: []\n",
      "netpol-bad");
  auto r = k8s_validate(f.path);
  EXPECT_EQ(r.status, 1) << r.out;
  for (const auto* problem : {"topowall-Web", "label value 'shop/web'", "bad CIDR", "must be TCP, UDP or SCTP", "egres"})
    EXPECT_NE(r.out.find(problem), std::string::npos) << problem << "\n" << r.out;
}
