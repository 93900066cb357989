// The real topowalld on a lab of named namespaces (one TCP server on 8080 in each), driven by the real
// CLI: the reliability matrix's kernel tests share it (docs/RELIABILITY.md). Root only; skipped with
// the reason otherwise. Everything carries the lab's prefix and the test's process id.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "conntrack/ct_listener.hpp"
#include "lab.hpp"

namespace topowall::testing {

inline bool reliability_long_run() { return std::getenv("TOPOWALL_RELIABILITY_LONG") != nullptr; }

struct DaemonLab : ::testing::Test {
  // prefix: the namespaces' ("twik" makes twik-a, ...); net: the /24's first three octets.
  void make_lab(const std::string& prefix, const std::string& net, const std::vector<std::string>& hosts) {
    if (auto why = Lab::missing(); !why.empty()) GTEST_SKIP() << why;
    if (access(TOPOWALLD, X_OK) != 0) GTEST_SKIP() << TOPOWALLD << " is not built (cmake --build build --target topowalld)";
    prefix_ = prefix;
    table = "topowall_it" + prefix.substr(prefix.size() - 1) + std::to_string(getpid());
    dir = "/tmp/topowall-" + prefix + "-" + std::to_string(getpid());
    sh("rm -rf " + dir);
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    lab = std::make_unique<Lab>(prefix, net, hosts);
    ASSERT_TRUE(lab->ok());
    auto cidr = *Cidr::parse(net + ".0/24");  // an earlier run's connections would be learned at start
    ASSERT_TRUE(conntrack::delete_conntrack([&](const FlowTuple& f) { return cidr.contains(f.src) || cidr.contains(f.dst); }));
    for (const auto& h : hosts) servers.push_back(std::make_unique<Server>(lab->ns_path(h), 8080));
  }
  void TearDown() override {
    if (HasFailure() && !dir.empty()) std::cerr << "agent log:\n" << sh_out("tail -30 " + dir + "/agent.log");
    stop_agent(SIGTERM);
    servers.clear();
    lab.reset();
    if (is_root() && !table.empty()) drop_tables(table);
    if (!dir.empty()) sh("rm -rf " + dir);
  }
  void start_agent(const std::string& mode) {
    std::vector<std::string> args = {TOPOWALLD, "--state-dir", dir + "/state", "--socket", dir + "/sock", "--table", table,
                                     "--nflog-group", std::to_string(5400 + getpid() % 100), "--discover-netns",
                                     "--netns-prefix", prefix_ + "-", "--mode", mode, "--log-level", "warn"};
    agent = spawn_logged(std::move(args), dir + "/agent.log");
    ASSERT_GT(agent, 0) << "could not start " << TOPOWALLD;
    ASSERT_TRUE(eventually([&] {
      auto s = cli("status");
      return s.is_object() && s.value("discovery_synced", false) && s.value("ruleset_applied", false);
    }, 10000)) << "the agent did not sync";
  }
  void stop_agent(int sig) {
    if (agent <= 0) return;
    kill(agent, sig);
    waitpid(agent, nullptr, 0);
    agent = 0;
  }
  // The CLI's JSON answer (null when it gave none).
  nlohmann::json cli(const std::string& args) {
    auto j = nlohmann::json::parse(sh_out(cli_line(args) + " -o json 2>/dev/null"), nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }
  // The CLI's exit status (0: the agent acknowledged the change).
  int cli_rc(const std::string& args) { return sh(cli_line(args)); }
  std::string cli_line(const std::string& args) const {
    return std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock " + args;
  }
  // "src>dst" of every edge in the graph (any state).
  std::set<std::string> edges() {
    std::set<std::string> out;
    const nlohmann::json graph = cli("topology export --format json");  // kept: a range-for over a temporary's member dangles
    for (const auto& e : graph["edges"])
      out.insert(e["src"].get<std::string>() + ">" + e["dst"].get<std::string>());
    return out;
  }

  std::string prefix_, table, dir;
  std::unique_ptr<Lab> lab;
  std::vector<std::unique_ptr<Server>> servers;
  pid_t agent = 0;
};

}  // namespace topowall::testing
