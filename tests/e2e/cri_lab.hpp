// A throwaway containerd (tools/lab/cri-lab.sh) driven through CRI as the kubelet would, with the project's
// own gRPC client; the agent binary runs beside it in the lab's network namespace. Root only; skipped with
// the reason when containerd, the CNI plugins or busybox-static are missing.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cri/cri.pb.h"
#include "lab.hpp"
#include "runtime/cri_rpc.hpp"

extern char** environ;

namespace topowall::testing::e2e {

struct CriLab : ::testing::Test {
  static std::string missing() {
    if (!is_root()) return "needs root: containerd, network namespaces, nftables";
    if (sh("command -v containerd >/dev/null && command -v ctr >/dev/null") != 0)
      return "containerd is not installed (tools/install-deps.sh installs it)";
    if (access("/usr/lib/cni/bridge", X_OK) != 0 || access("/usr/lib/cni/host-local", X_OK) != 0)
      return "the CNI bridge and host-local plugins are not in /usr/lib/cni (containernetworking-plugins)";
    if (access("/bin/busybox", X_OK) != 0) return "busybox-static is not installed (the pause image is made of it)";
    if (sh("command -v nsenter >/dev/null") != 0) return "nsenter (util-linux) is missing";
    return {};
  }

  void SetUp() override {
    if (auto why = missing(); !why.empty()) GTEST_SKIP() << why;
    tag = "twcri-" + std::to_string(getpid());
    dir = "/tmp/" + tag;
    sh(lab() + " down " + dir + " " + tag);
    ASSERT_EQ(sh(lab() + " up " + dir + " " + tag + " " + subnet), 0) << sh_out("tail -20 " + dir + "/containerd.log");
    rpc = std::make_unique<runtime::CriRpc>(dir + "/cri.sock");
    auto v = rpc->version();
    ASSERT_TRUE(v) << v.error().message;
  }

  void TearDown() override {
    if (dir.empty()) return;
    stop_agent();
    if (HasFailure()) std::cerr << "agent log:\n" << sh_out("tail -40 " + dir + "/agent.log");
    for (auto pid : servers) kill(pid, SIGKILL);
    // Pods before containerd: a pod left running keeps its shim, mounts and cgroup.
    if (rpc)
      for (const auto& [name, id] : pods) remove_pod(name);
    rpc.reset();
    sh(lab() + " down " + dir + " " + tag);
    sh("rmdir /sys/fs/cgroup/" + tag + " 2>/dev/null");
  }

  static std::string lab() { return TOPOWALL_SOURCE_DIR "/tools/lab/cri-lab.sh"; }

  // A pod as the kubelet makes one: namespace/name, its labels, on the pod network or the node's.
  std::string run_pod(const std::string& ns, const std::string& name, const std::string& app, bool host = false) {
    ::runtime::v1::PodSandboxConfig c;
    auto* m = c.mutable_metadata();
    m->set_name(name);
    m->set_namespace_(ns);
    m->set_uid(ns + "-" + name + "-" + std::to_string(++uid));
    if (!host) c.set_hostname(name);  // a host-network pod has the node's UTS namespace too
    (*c.mutable_labels())["app"] = app;
    c.mutable_linux()->set_cgroup_parent("/" + tag);
    if (host)
      c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(::runtime::v1::NODE);
    auto id = rpc->run(c);
    EXPECT_TRUE(id) << id.error().message;
    if (!id) return {};
    pods[ns + "/" + name] = *id;
    return *id;
  }
  void remove_pod(const std::string& key) {
    auto it = pods.find(key);
    if (it == pods.end()) return;
    auto st = rpc->stop(it->second);
    EXPECT_TRUE(st) << st.error().message;
    auto rm = rpc->remove(it->second);
    EXPECT_TRUE(rm) << rm.error().message;
    pods.erase(it);
  }
  std::string ip_of(const std::string& key) {
    auto st = rpc->status(pods.at(key), false);
    return st ? st->status().network().ip() : "";
  }
  std::string netns_of(const std::string& key) {
    auto st = rpc->status(pods.at(key), true);
    if (!st) return "";
    auto j = nlohmann::json::parse(st->info().at("info"), nullptr, false);
    for (const auto& n : j["runtimeSpec"]["linux"]["namespaces"])
      if (n["type"] == "network") return n["path"];
    return "";
  }
  // A TCP echo server on `port` inside the pod's network namespace.
  void serve(const std::string& key, int port) {
    auto pid = sh_out("nsenter --net=" + netns_of(key) + " setsid busybox nc -ll -p " + std::to_string(port) +
                      " -e /bin/cat >/dev/null 2>&1 </dev/null & echo $!");
    servers.push_back(std::stoi(pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  bool tcp(const std::string& from, const std::string& ip, int port) {
    return sh("echo x | nsenter --net=" + netns_of(from) + " busybox nc -w 2 " + ip + " " + std::to_string(port) +
              " >/dev/null 2>&1") == 0;
  }

  void start_agent(const std::string& mode = "learn") {
    std::vector<std::string> args = {"nsenter",   "--net=/run/netns/" + tag,
                                     TOPOWALLD,   "--state-dir",   dir + "/agent", "--socket",
                                     dir + "/sock", "--cri-socket", dir + "/cri.sock", "--mode",
                                     mode,        "--table",       "topowall_cri", "--nflog-group",
                                     "5302",      "--alert-sink",  "jsonl:" + dir + "/alerts.jsonl"};
    agent = topowall::testing::spawn_logged(std::move(args), dir + "/agent.log");
    ASSERT_GT(agent, 0) << "could not start " << TOPOWALLD;
    ASSERT_TRUE(eventually([&] {
      auto s = cli("status");
      return s.is_object() && s.value("discovery_synced", false) && s.value("ruleset_applied", false);
    })) << "agent did not sync; log:\n" << sh_out("cat " + dir + "/agent.log");
  }
  void stop_agent() {
    if (agent <= 0) return;
    kill(agent, SIGTERM);
    waitpid(agent, nullptr, 0);
    agent = 0;
  }
  nlohmann::json cli(const std::string& args) {
    auto out = sh_out(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock " + args + " -o json 2>/dev/null");
    auto j = nlohmann::json::parse(out, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }
  int endpoints() { return cli("status").value("endpoints", -1); }
  std::set<std::string> edges() {
    std::set<std::string> out;
    const auto graph = cli("topology export --format json");  // held: ["edges"] of a temporary would dangle
    for (const auto& e : graph["edges"])
      out.insert(e["src"].get<std::string>() + ">" + e["dst"].get<std::string>() + ":" + e["proto"].get<std::string>() +
                 "/" + std::to_string(e["port"].get<int>()));
    return out;
  }
  std::string alerts_text() { return sh_out("cat " + dir + "/alerts.jsonl 2>/dev/null"); }
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(8)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  }

  std::string tag, dir, subnet = "10.89.79";
  std::unique_ptr<runtime::CriRpc> rpc;
  std::map<std::string, std::string> pods;  // "ns/name" -> sandbox id
  std::vector<pid_t> servers;
  pid_t agent = 0;
  int uid = 0;
};

}  // namespace topowall::testing::e2e
