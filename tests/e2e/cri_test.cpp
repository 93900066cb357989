// End to end on a real containerd through CRI: pods made as the kubelet makes them (RunPodSandbox), the
// agent binary discovering them with --cri-socket, learning, enforcing, following scale-out, deletion and
// address reuse. Root only; skipped with the reason when containerd or the CNI plugins are missing.
#include "cri_lab.hpp"

using namespace topowall::testing;
using namespace topowall::testing::e2e;

namespace {
// The workload the agent named for a pod (its endpoint's workload in `topowall workloads`), "" if none.
std::string workload_of(const nlohmann::json& workloads, const std::string& pod_name) {
  for (const auto& w : workloads)
    for (const auto& c : w.value("containers", nlohmann::json::array()))
      if ((c.is_string() && c == pod_name) || (c.is_object() && c.value("name", "") == pod_name))
        return w.value("name", "");
  return "";
}
}  // namespace

TEST_F(CriLab, PodsAreDiscoveredLearnedEnforcedAndForgotten) {
  run_pod("shop", "api-0", "api");
  run_pod("shop", "web-0", "web");
  run_pod("tenant", "web-0", "web");
  run_pod("kube-system", "exporter", "exporter", /*host=*/true);
  start_agent();
  ASSERT_TRUE(eventually([&] { return endpoints() == 3; })) << cli("status").dump();
  auto status = cli("status");
  EXPECT_EQ(status["counters"].value("runtime_host_network", 0), 1) << "the host-network pod is `host`";
  EXPECT_EQ(workload_of(cli("workloads"), "exporter"), "") << "a host-network pod is never an endpoint";
  const auto workloads = cli("workloads");
  const auto shop_web = workload_of(workloads, "web-0"), api = workload_of(workloads, "api-0");
  ASSERT_FALSE(api.empty()) << workloads.dump();
  EXPECT_TRUE(api == "api" || api == "shop/api") << "named from the pod's app label: " << api;

  const auto api_ip = ip_of("shop/api-0");
  serve("shop/api-0", 8080);
  ASSERT_TRUE(tcp("shop/web-0", api_ip, 8080));
  // `web>api` today, `shop/web>shop/api` once identity is namespace-scoped.
  auto learned = [&] { return edges().count("web>api:tcp/8080") + edges().count("shop/web>shop/api:tcp/8080"); };
  ASSERT_TRUE(eventually([&] { return learned() == 1; }))
      << "learned nothing: " << cli("topology export --format json").dump();

  ASSERT_EQ(cli("mode enforce")["mode"], "enforce");
  EXPECT_TRUE(tcp("shop/web-0", api_ip, 8080)) << "a learned flow passes";

  // Scale-out: a new pod of a known workload is allowed at once.
  const auto t0 = std::chrono::steady_clock::now();
  run_pod("shop", "web-1", "web");
  ASSERT_TRUE(eventually([&] { return endpoints() == 4; }));
  // containerd 1.6 has no event stream: the pod's new network namespace woke the agent, not the 5 s relist.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_GE(cli("status")["counters"].value("runtime_events", 0), 1) << "no change was noticed between relists";
  EXPECT_TRUE(tcp("shop/web-1", api_ip, 8080)) << "the new replica inherits its workload's edges";

  // Identity is namespace-scoped: tenant/web is not shop/web, so it is blocked and named with its namespace.
  EXPECT_NE(cli("workloads").dump().find("tenant/web"), std::string::npos) << cli("workloads").dump();
  EXPECT_FALSE(tcp("tenant/web-0", api_ip, 8080)) << "tenant/web inherited shop/web's edge";
  EXPECT_TRUE(eventually([&] { return alerts_text().find("\"src\":\"tenant/web\"") != std::string::npos; }))
      << alerts_text();

  // Deletion: the pod's endpoint goes; a new pod on its address inherits nothing.
  remove_pod("shop/api-0");
  ASSERT_TRUE(eventually([&] { return endpoints() == 3; })) << "a deleted pod stays an endpoint";
  // host-local hands out the address after the last one it reserved: make that the freed one.
  auto last = api_ip.substr(0, api_ip.rfind('.') + 1) + std::to_string(std::stoi(api_ip.substr(api_ip.rfind('.') + 1)) - 1);
  ASSERT_EQ(sh("echo -n " + last + " > " + dir + "/ipam/twcri/last_reserved_ip.0"), 0);
  run_pod("shop", "intruder-0", "intruder");
  ASSERT_EQ(ip_of("shop/intruder-0"), api_ip) << "the lab could not reuse the address";
  ASSERT_TRUE(eventually([&] { return endpoints() == 4; }));
  serve("shop/intruder-0", 8080);
  EXPECT_FALSE(tcp("shop/web-0", api_ip, 8080)) << "the reused address inherited api's permission";
  EXPECT_TRUE(eventually([&] { return alerts_text().find("intruder") != std::string::npos; })) << alerts_text();
}
