// The podman lab the end-to-end tests share: a podman network, containers labelled for cleanup, the
// agent binary spawned with its own state, table and metrics port, and the CLI to read it.
// Root only; skipped with the reason when podman or its service is missing.
#pragma once

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

namespace topowall::testing::e2e {

using nlohmann::json;

inline const std::string kNet = "topowall-e2e";
inline const std::string kSubnet = "10.89.78";
inline const std::string kImage = "localhost/topowall-busybox:1";

inline std::string runtime_socket() {
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

  void start_agent(const std::string& mode = "learn", const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {TOPOWALLD,       "--state-dir",   dir + "/state",     "--socket",
                                     dir + "/sock",   "--runtime-socket", agent_runtime.empty() ? runtime_socket() : agent_runtime, "--mode",
                                     mode,            "--table",       "topowall_e2e",     "--nflog-group",
                                     "5301",          "--no-discover-netns", "--alert-sink", "jsonl:" + dir + "/alerts.jsonl",
                                     "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port())};
    args.insert(args.end(), extra.begin(), extra.end());
    agent = topowall::testing::spawn_logged(std::move(args), dir + "/agent.log");
    ASSERT_GT(agent, 0) << "could not start " << TOPOWALLD;
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
  std::string agent_runtime;  // the runtime API socket the agent is given, when not podman's own (a proxy)
  pid_t agent = 0;
};

}  // namespace topowall::testing::e2e
