// End to end on real podman containers through the Docker Engine API that
// `podman system service` serves: the agent binary and the CLI, as users run
// them. Root only; skipped with the reason when podman or its service is missing.
#include "podman_lab.hpp"

using namespace topowall::testing;
using namespace topowall::testing::e2e;
using nlohmann::json;

TEST_F(PodmanLab, LearnsExactlyTheGeneratedFlowsAndThenEnforcesThem) {
  run("topowall-e2e-web-1", "web", "httpd -f -p 8080 -h /www");
  run("topowall-e2e-web-2", "web", "httpd -f -p 8080 -h /www");
  run("topowall-e2e-api", "api", "httpd -f -p 8080 -h /www", kSubnet + ".10");
  run("topowall-e2e-db", "db", "nc -ll -p 5432 -e cat");
  start_agent();
  wait_endpoints(4);
  // Prometheus sees what `topowall status` sees, and the probe says ready.
  EXPECT_NE(http_get("/metrics").find("\ntopowall_endpoints 4\n"), std::string::npos) << http_get("/metrics");
  EXPECT_EQ(http_get("/healthz").rfind("HTTP/1.1 200", 0), 0u) << http_get("/healthz");
  const auto api = ip_of("topowall-e2e-api"), db = ip_of("topowall-e2e-db"), web1 = ip_of("topowall-e2e-web-1");

  // Learn: the flows the lab generates.
  ASSERT_TRUE(tcp("topowall-e2e-web-1", api, 8080));
  ASSERT_TRUE(tcp("topowall-e2e-web-2", api, 8080));
  ASSERT_EQ(sh("podman exec topowall-e2e-web-1 ping -c1 -W1 " + api), 0);
  ASSERT_TRUE(tcp("topowall-e2e-api", db, 5432));
  const std::set<std::string> learned{"web>api:tcp/8080", "web>api:icmp/8", "api>db:tcp/5432"};
  eventually([&] { return edges() == learned; });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // and nothing more arrives
  EXPECT_EQ(edges(), learned);
  bool replicas = false;
  for (const auto& w : cli("workloads"))
    if (w["name"] == "web") replicas = w["containers"].size() == 2;
  EXPECT_TRUE(replicas) << "the two web replicas are one workload";

  // Enforce: known flows pass; unknown and reversed flows are blocked and named.
  ASSERT_EQ(cli("mode enforce")["mode"], "enforce");
  EXPECT_TRUE(tcp("topowall-e2e-web-2", api, 8080)) << "known flow";
  EXPECT_FALSE(tcp("topowall-e2e-db", api, 8080)) << "unknown flow";
  EXPECT_FALSE(tcp("topowall-e2e-api", web1, 8080)) << "reversed flow";
  eventually([&] {
    auto a = alerts_text();
    return a.find("\"src\":\"db\"") != std::string::npos && a.find("\"dst\":\"web\"") != std::string::npos;
  });
  auto alerts = alerts_text();
  EXPECT_NE(alerts.find("\"src\":\"db\""), std::string::npos) << alerts;
  EXPECT_NE(alerts.find("\"dst\":\"web\""), std::string::npos) << alerts;
  const std::set<std::string> blocked{"db>api", "api>web"};
  eventually([&] { return pending_pairs() == blocked; });
  EXPECT_EQ(pending_pairs(), blocked);

  // A new replica of a known workload is allowed at once, without relearning.
  run("topowall-e2e-web-3", "web", "sleep 600");
  wait_endpoints(5);
  EXPECT_TRUE(tcp("topowall-e2e-web-3", api, 8080)) << "new replica";

  // Another identity on api's reused address gets none of api's permissions.
  ASSERT_EQ(sh("podman rm -f -t 0 topowall-e2e-api"), 0);
  run("topowall-e2e-intruder", "intruder", "httpd -f -p 8080 -h /www", api);
  wait_endpoints(5);
  EXPECT_FALSE(tcp("topowall-e2e-web-1", api, 8080)) << "reused address inherited api's permission";

  // SIGKILL: the agent is gone, enforcement is not.
  stop_agent(SIGKILL);
  EXPECT_FALSE(tcp("topowall-e2e-db", web1, 8080));
  EXPECT_EQ(sh("nft list table inet topowall_e2e"), 0);
}

TEST_F(PodmanLab, OperatorApprovesDeniesAndApprovalsExpire) {
  run("topowall-e2e-api", "api", "httpd -f -p 8080 -h /www");
  run("topowall-e2e-web-1", "web", "sleep 600");
  run("topowall-e2e-db", "db", "sleep 600");
  start_agent("enforce");
  wait_endpoints(3);
  const auto api = ip_of("topowall-e2e-api");

  // Blocked, and pending with both workload names.
  EXPECT_FALSE(tcp("topowall-e2e-web-1", api, 8080));
  EXPECT_FALSE(tcp("topowall-e2e-db", api, 8080));
  eventually([&] { return pending_pairs().size() == 2; });
  std::map<std::string, int> ids;
  for (const auto& p : cli("flows pending")) ids[p["src"].get<std::string>() + ">" + p["dst"].get<std::string>()] = p["id"];
  ASSERT_TRUE(ids.count("web>api") && ids.count("db>api")) << cli("flows pending").dump();

  // Approved: connects within a second.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock flows approve " +
               std::to_string(ids["web>api"]) + " --comment e2e"),
            0);
  EXPECT_TRUE(tcp("topowall-e2e-web-1", api, 8080));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1) + std::chrono::milliseconds(500));

  // Denied: stays blocked and is not pending again.
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock flows deny " + std::to_string(ids["db>api"])), 0);
  EXPECT_FALSE(tcp("topowall-e2e-db", api, 8080));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(cli("flows pending").empty()) << cli("flows pending").dump();

  // An approval with an expiry is removed when it expires.
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock edges remove web api tcp/8080"), 0);
  EXPECT_FALSE(tcp("topowall-e2e-web-1", api, 8080));
  eventually([&] { return cli("flows pending").size() == 1; });
  auto pending = cli("flows pending");
  ASSERT_EQ(pending.size(), 1u);
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock flows approve " +
               std::to_string(pending[0]["id"].get<int>()) + " --for 2s"),
            0);
  EXPECT_TRUE(tcp("topowall-e2e-web-1", api, 8080));
  // Expiry is checked once a second: blocked again within 2 s + that second (+ slack for a slow machine).
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_TRUE(eventually([&] { return !tcp("topowall-e2e-web-1", api, 8080); }, std::chrono::seconds(4)))
      << "expired approval still allows";
  EXPECT_TRUE(cli("topology export --format json")["edges"].size() == 1u) << "only the denied edge remains";
}

// Attacks from inside an enforced container that has NET_ADMIN and NET_RAW: another workload's address
// added to its own interface (impersonation), and a link-scope address. Each is dropped by the guard,
// named in an alert, and changes nothing: the victim keeps its address and its edge.
TEST_F(PodmanLab, AContainerWithNetAdminCannotImpersonateOrSpoof) {
  run("topowall-e2e-web", "web", "sleep 1000000");
  run("topowall-e2e-db", "db", "httpd -f -p 8080 -h /www");
  run("topowall-e2e-evil", "evil", "sleep 1000000", "", "--cap-add NET_ADMIN --cap-add NET_RAW");
  start_agent();
  wait_endpoints(3);
  const auto web = ip_of("topowall-e2e-web"), db = ip_of("topowall-e2e-db");
  ASSERT_TRUE(tcp("topowall-e2e-web", db, 8080));
  ASSERT_EQ(sh("podman exec topowall-e2e-web ping -c1 -W1 " + db), 0);
  ASSERT_TRUE(eventually([&] { return edges().count("web>db:tcp/8080") == 1 && edges().count("web>db:icmp/8") == 1; }));
  ASSERT_TRUE(cli("mode enforce").is_object());
  ASSERT_FALSE(tcp("topowall-e2e-evil", db, 8080)) << "no edge evil -> db";

  // Impersonation: web's address on evil's interface, then a connection from it.
  ASSERT_EQ(sh("podman exec topowall-e2e-evil ip addr add " + web + "/32 dev eth0"), 0);
  // busybox ping picks its source with -I; web -> db icmp/8 is an edge, so without the guard it passes.
  auto from = [&](const std::string& src) {
    return sh("podman exec topowall-e2e-evil ping -c1 -W1 -I " + src + " " + db) == 0;
  };
  ASSERT_FALSE(from(ip_of("topowall-e2e-evil"))) << "evil's own ping has no edge";
  EXPECT_FALSE(from(web)) << "evil passed as web";
  // A link-scope address.
  ASSERT_EQ(sh("podman exec topowall-e2e-evil ip addr add 169.254.9.9/16 dev eth0 scope link"), 0);
  EXPECT_FALSE(from("169.254.9.9"));
  ASSERT_TRUE(eventually([&] { return alerts_text().find("\"reason\":\"spoofed\"") != std::string::npos; }))
      << alerts_text();
  EXPECT_NE(alerts_text().find("\"as\":\"web\""), std::string::npos) << alerts_text();
  // A gratuitous ARP announcing web's address from evil's port: dropped, and alerted as ARP.
  sh("podman exec topowall-e2e-evil busybox arping -U -c 2 -w 2 -I eth0 -s " + web + " " + web);
  EXPECT_TRUE(eventually([&] { return alerts_text().find("\"proto\":\"arp\"") != std::string::npos; }))
      << "forged ARP is alerted: " << alerts_text();
  auto counters = cli("status")["counters"];
  EXPECT_GE(counters.value("guard_spoofed", 0), 1) << counters.dump();
  EXPECT_GE(counters.value("address_claims_refused", 0), 1) << "the claim on web's address was ignored";
  // The victim is untouched: its address is still web's and its edge still passes.
  EXPECT_TRUE(tcp("topowall-e2e-web", db, 8080)) << "web lost its address or its edge";
  EXPECT_TRUE(pending_pairs().count("evil>db") == 1 || pending_pairs().empty()) << "nothing learned for web";
  EXPECT_EQ(edges().count("evil>db:tcp/8080"), 0u);
}

// A container that scans its neighbour while learning (issue 15): closed ports teach nothing, the scan
// quarantines it with an alert naming it, and the open port it finds waits for review with the reason.
TEST_F(PodmanLab, AScanWhileLearningLearnsNothingBeyondTheRealEdges) {
  run("topowall-e2e-api", "api", "httpd -p 9000 -h /www; httpd -f -p 8080 -h /www", kSubnet + ".10");
  run("topowall-e2e-web-1", "web", "sleep 600");
  start_agent();
  wait_endpoints(2);
  const auto api = ip_of("topowall-e2e-api");
  ASSERT_TRUE(tcp("topowall-e2e-web-1", api, 8080));  // its real edge
  const std::set<std::string> real{"web>api:tcp/8080"};
  ASSERT_TRUE(eventually([&] { return edges() == real; })) << edges().size();
  // The scan: 30 closed ports (refused with a reset), then an open one.
  ASSERT_EQ(sh("podman exec topowall-e2e-web-1 sh -c 'for p in $(seq 1 30) 9000; do echo x | nc -w 1 " + api +
               " $p; done; true'"),
            0);
  ASSERT_TRUE(eventually([&] { return alerts_text().find("\"reason\":\"scan\"") != std::string::npos; }))
      << alerts_text();
  EXPECT_NE(alerts_text().find("\"verdict\":\"held\""), std::string::npos) << alerts_text();
  json held;
  ASSERT_TRUE(eventually([&] {
    for (const auto& p : cli("flows pending"))
      if (p["src"] == "web" && p["port"] == 9000) held = p;
    return !held.is_null();
  })) << cli("flows pending").dump();
  EXPECT_EQ(held["reason"], "scan");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(edges(), real) << "no probed port became an edge";
  json web;
  for (const auto& w : cli("workloads"))
    if (w["name"] == "web") web = w["learning"];
  EXPECT_EQ(web["verdict"], "quarantined") << web.dump();
  EXPECT_EQ(web["quarantine"], "scan");
}
