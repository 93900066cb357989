// End to end on real podman containers through the Docker Engine API that
// `podman system service` serves: the agent binary and the CLI, as users run
// them. Root only; skipped with the reason when podman or its service is missing.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "conntrack/ct_listener.hpp"
#include "lab.hpp"

extern char** environ;

using namespace topowall::testing;
using nlohmann::json;

namespace {

const std::string kNet = "topowall-e2e";
const std::string kSubnet = "10.89.78";
const std::string kImage = "localhost/topowall-busybox:1";

std::string runtime_socket() {
  const char* s = getenv("TOPOWALL_RUNTIME_SOCKET");
  return s ? s : "/run/topowall-lab/podman.sock";
}

struct PodmanLab : ::testing::Test {
  static void SetUpTestSuite() { setenv("CONTAINERS_CONF", TOPOWALL_SOURCE_DIR "/deploy/podman/containers.conf", 0); }

  void SetUp() override {
    if (auto why = topowall::testing::Lab::missing(); !why.empty()) GTEST_SKIP() << why;
    if (sh("command -v podman") != 0) GTEST_SKIP() << "podman is not installed (tools/install-deps.sh installs it)";
    struct stat st{};
    if (stat(runtime_socket().c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
      GTEST_SKIP() << "no podman API service at " << runtime_socket() << " (tools/test.sh starts one)";
    if (sh("podman image exists " + kImage) != 0) GTEST_SKIP() << "image " << kImage << " missing (tools/test.sh builds it)";
    cleanup_containers();
    sh("podman network rm -f " + kNet);
    // Earlier tests' connections on this subnet linger in conntrack; the
    // agent's start-up dump must not learn them.
    auto net = *topowall::Cidr::parse(kSubnet + ".0/24");
    auto cleared = topowall::conntrack::delete_conntrack(
        [&](const topowall::FlowTuple& f) { return net.contains(f.src) || net.contains(f.dst); });
    ASSERT_TRUE(cleared) << cleared.error().message;
    ASSERT_EQ(sh("podman network create --disable-dns --subnet " + kSubnet + ".0/24 " + kNet), 0);
    dir = "/tmp/topowall-e2e-" + std::to_string(getpid());
    sh("rm -rf " + dir);
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  }

  void TearDown() override {
    if (!is_root() || dir.empty()) return;
    stop_agent(SIGTERM);
    if (HasFailure()) std::cerr << "agent log:\n" << sh_out("tail -40 " + dir + "/agent.log");
    cleanup_containers();
    sh("podman network rm -f " + kNet);
    sh(std::string(TOPOWALLD) + " --uninstall --table topowall_e2e");
    sh("rm -rf " + dir);
  }

  static void cleanup_containers() { sh("podman rm -f -t 0 $(podman ps -aq --filter label=topowall-e2e=1)"); }

  // name, app label ("" = none), command, static ip ("" = any)
  void run(const std::string& name, const std::string& app, const std::string& cmd, const std::string& ip = "",
           const std::string& extra = "") {
    std::string c = "podman run -d --name " + name + " --network " + kNet + " --label topowall-e2e=1 " + extra;
    if (!app.empty()) c += " --label app=" + app;
    if (!ip.empty()) c += " --ip " + ip;
    ASSERT_EQ(sh(c + " " + kImage + " sh -c '" + cmd + "'"), 0) << name;
  }
  std::string ip_of(const std::string& name) {
    auto out = sh_out("podman inspect -f '{{(index .NetworkSettings.Networks \"" + kNet + "\").IPAddress}}' " + name);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  bool tcp(const std::string& from, const std::string& ip, int port) {
    return sh("podman exec " + from + " sh -c 'echo x | nc -w 2 " + ip + " " + std::to_string(port) + "'") == 0;
  }

  void start_agent(const std::string& mode = "learn") {
    std::vector<std::string> args = {TOPOWALLD,       "--state-dir",   dir + "/state",     "--socket",
                                     dir + "/sock",   "--runtime-socket", runtime_socket(), "--mode",
                                     mode,            "--table",       "topowall_e2e",     "--nflog-group",
                                     "5301",          "--no-discover-netns", "--alert-sink", "jsonl:" + dir + "/alerts.jsonl",
                                     "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port())};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, (dir + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ASSERT_EQ(posix_spawn(&agent, TOPOWALLD, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 100; ++i) {
      auto s = cli("status");
      if (s.is_object() && s.value("discovery_synced", false) && s.value("ruleset_applied", false)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "agent did not sync; log:\n" << sh_out("cat " + dir + "/agent.log");
  }
  void stop_agent(int sig) {
    if (agent <= 0) return;
    kill(agent, sig);
    waitpid(agent, nullptr, 0);
    agent = 0;
  }
  json cli(const std::string& args) {
    auto out = sh_out(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock " + args + " -o json 2>/dev/null");
    auto j = json::parse(out, nullptr, false);
    return j.is_discarded() ? json() : j;
  }
  // Wait until the agent knows `n` endpoints (container starts are events, not polls).
  void wait_endpoints(int n) {
    for (int i = 0; i < 100; ++i) {
      if (cli("status").value("endpoints", 0) == n) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "agent did not see " << n << " endpoints";
  }
  std::set<std::string> edges() {
    std::set<std::string> out;
    const auto graph = cli("topology export --format json");
    for (const auto& e : graph["edges"])
      out.insert(e["src"].get<std::string>() + ">" + e["dst"].get<std::string>() + ":" + e["proto"].get<std::string>() +
                 "/" + std::to_string(e["port"].get<int>()));
    return out;
  }
  static int metrics_port() { return 19600 + getpid() % 300; }
  // GET on the agent's metrics endpoint; the whole HTTP response ("" if unreachable).
  static std::string http_get(const std::string& path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(metrics_port()));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    return out;
  }
  std::string alerts_text() { return sh_out("cat " + dir + "/alerts.jsonl"); }
  std::set<std::string> pending_pairs() {
    std::set<std::string> out;
    for (const auto& p : cli("flows pending")) out.insert(p["src"].get<std::string>() + ">" + p["dst"].get<std::string>());
    return out;
  }
  // The agent works asynchronously (conntrack events, NFLOG, podman's own latency): poll, don't guess a sleep.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(8)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return true;
  }

  std::string dir;
  pid_t agent = 0;
};

}  // namespace

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
