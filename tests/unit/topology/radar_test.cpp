// The radar's model: every node kind, islands by namespace or network, pending and recently blocked
// flows with their ids, and the HTML-safe JSON the exported page embeds.
#include <gtest/gtest.h>

#include "topowall/topology/radar.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;
using namespace topowall::topology;
using nlohmann::json;

namespace {

const json* node(const json& m, const std::string& id) {
  for (const auto& n : m["nodes"])
    if (n["id"] == id) return &n;
  return nullptr;
}

const json* edge(const json& m, const std::string& src, const std::string& dst) {
  for (const auto& e : m["edges"])
    if (e["src"] == src && e["dst"] == dst) return &e;
  return nullptr;
}

EndpointInfo ep(const std::string& id, const std::string& addr, std::map<std::string, std::string> labels = {}) {
  EndpointInfo i;
  i.id = id;
  i.name = id;
  i.image = "busybox";
  i.labels = std::move(labels);
  i.addresses = {*IpAddr::parse(addr)};
  return i;
}

}  // namespace

TEST(RadarModel, DrawsWorkloadsOutsideNodesIslandsAndPendingFlows) {
  const auto t = *parse_time("2026-01-01T00:00:00Z");
  Graph g;
  g.note_workload("web", {{"namespace", "shop"}}, t);
  g.observe({"web", "api", Proto::tcp, 8080}, t, 5);
  g.observe({"api", "world", Proto::tcp, 443}, t);
  g.observe({"host", "web", Proto::tcp, 80}, t, 1, EdgeState::approved);
  g.observe({"api", "corp", Proto::tcp, 22}, t, 1, EdgeState::denied);
  (void)g.observe_pending({"db", "web", Proto::tcp, 8080}, t, {});
  (void)g.observe_pending({"db", "api", Proto::udp, 53}, t, {});
  EndpointTable live;
  live.upsert("web", ep("c1", "10.88.0.2", {{"namespace", "shop"}}));
  live.upsert("web", ep("c2", "10.88.0.3", {{"namespace", "shop"}}));
  live.upsert("api", ep("c3", "10.88.0.4"));
  live.set_external_networks({{*Cidr::parse("192.0.2.0/24"), "corp"}});
  ModeTable modes;
  modes.global = Mode::monitor;
  modes.overrides["web"] = Mode::enforce;
  // A blocked packet of db -> web a minute ago: that pending flow is drawn as blocked.
  json alerts = json::array({{{"time", "2026-01-01T00:09:00Z"}, {"src", "db"}, {"dst", "web"}, {"proto", "tcp"},
                              {"port", 8080}, {"verdict", "blocked"}}});
  const auto m = radar_model({g, &live, &modes, alerts, t + std::chrono::minutes(10)});

  ASSERT_NE(node(m, "web"), nullptr);
  EXPECT_EQ((*node(m, "web"))["replicas"], 2);
  EXPECT_EQ((*node(m, "web"))["mode"], "enforce");
  EXPECT_EQ((*node(m, "web"))["island"], "shop") << "its namespace label";
  EXPECT_EQ((*node(m, "web"))["addresses"].size(), 2u);
  EXPECT_EQ((*node(m, "api"))["island"], "10.88.0.0/24") << "no namespace: its network";
  EXPECT_EQ((*node(m, "api"))["mode"], "monitor");
  EXPECT_EQ((*node(m, "db"))["replicas"], 0) << "known only from a flow";
  EXPECT_EQ((*node(m, "db"))["island"], "workloads");
  EXPECT_EQ((*node(m, "host"))["kind"], "host");
  EXPECT_EQ((*node(m, "world"))["kind"], "world");
  EXPECT_EQ((*node(m, "corp"))["kind"], "network");
  EXPECT_EQ((*node(m, "corp"))["island"], "outside");
  EXPECT_EQ((*edge(m, "web", "api"))["state"], "learned");
  EXPECT_EQ((*edge(m, "web", "api"))["count"], 5);
  EXPECT_EQ((*edge(m, "host", "web"))["state"], "approved");
  EXPECT_EQ((*edge(m, "api", "corp"))["state"], "denied");
  EXPECT_EQ((*edge(m, "db", "web"))["state"], "blocked");
  EXPECT_EQ((*edge(m, "db", "api"))["state"], "pending");
  EXPECT_EQ((*edge(m, "db", "api"))["id"], g.pending().at({"db", "api", Proto::udp, 53}).id);
  EXPECT_EQ(m["mode"], "monitor");
  EXPECT_EQ(m["alerts"], alerts);
  std::set<std::string> islands;
  for (const auto& i : m["islands"]) islands.insert(i["id"].get<std::string>() + ":" + i["kind"].get<std::string>());
  EXPECT_EQ(islands, (std::set<std::string>{"shop:namespace", "10.88.0.0/24:network", "workloads:network", "outside:outside"}));

  // Past kRecentlyBlocked the same flow is pending again.
  const auto later = radar_model({g, &live, &modes, alerts, t + std::chrono::minutes(30)});
  EXPECT_EQ((*edge(later, "db", "web"))["state"], "pending");
}

TEST(RadarModel, OfflineGraphHasNoReplicasOrModes) {
  Graph g;
  g.observe({"a", "b", Proto::icmp, 8}, {});
  const auto m = radar_model({g});
  EXPECT_EQ((*node(m, "a"))["replicas"], 0);
  EXPECT_FALSE(node(m, "a")->contains("mode"));
  EXPECT_FALSE(m.contains("mode"));
}

TEST(RadarModel, JsonForHtmlCannotEndItsScriptElement) {
  json j{{"label", "</script><script>alert(1)</script><!-- & \u2028"}};
  const auto text = json_for_html(j);
  EXPECT_EQ(text.find('<'), std::string::npos) << text;
  EXPECT_EQ(text.find('>'), std::string::npos) << text;
  EXPECT_EQ(text.find('&'), std::string::npos) << text;
  EXPECT_EQ(json::parse(text), j) << "the escapes are JSON's own: the page reads back the same text";
}

// Pods are named `<namespace>/<app>`: a workload known only from a remote node or an imported graph has
// no labels here, yet it belongs to its namespace's island, next to the same namespace's local pods.
TEST(RadarModel, NamespaceScopedNamesAreGroupedByTheirNamespaceWithoutLabels) {
  Graph g;
  g.observe({"shop/web", "shop/db", Proto::tcp, 5432}, {});
  g.observe({"tenant/web", "shop/web", Proto::tcp, 80}, {});
  EndpointTable live;
  live.upsert("shop/web", ep("c1", "10.88.0.2", {{"io.kubernetes.pod.namespace", "shop"}}));
  const auto m = radar_model({g, &live});
  EXPECT_EQ((*node(m, "shop/web"))["island"], "shop");
  EXPECT_EQ((*node(m, "shop/db"))["island"], "shop") << "no labels, no address: the name's namespace";
  EXPECT_EQ((*node(m, "tenant/web"))["island"], "tenant");
  std::set<std::string> islands;
  for (const auto& i : m["islands"]) islands.insert(i["id"].get<std::string>() + ":" + i["kind"].get<std::string>());
  EXPECT_EQ(islands, (std::set<std::string>{"shop:namespace", "tenant:namespace"}));
  // A name that merely starts with a slash is no namespace.
  EXPECT_EQ(island_of("/odd", {}, {}), "workloads");
}
