// Section 9: Kubernetes pods through CRI on a throwaway containerd (tools/lab/cri-lab.sh), from
// RunPodSandbox (as the kubelet calls it) to the pod's address in the kernel's endpoint set, next to
// RunPodSandbox alone without the agent in the same run.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common.hpp"
#include "cri/cri.pb.h"
#include "nft/writer.hpp"
#include "runtime/cri_rpc.hpp"

extern char** environ;

namespace topowall::bench {

using namespace topowall::testing;

namespace {

const std::string kTag = "twb-cri", kDir = "/tmp/twb-cri", kTable = "twb_cri";
const std::string kLab = TOPOWALL_SOURCE_DIR "/tools/lab/cri-lab.sh";

std::string missing() {
  if (sh("command -v containerd >/dev/null && command -v ctr >/dev/null") != 0) return "containerd is not installed";
  if (access("/usr/lib/cni/bridge", X_OK) != 0) return "the CNI bridge plugin is not in /usr/lib/cni";
  if (access("/bin/busybox", X_OK) != 0) return "busybox-static is not installed";
  return {};
}

::runtime::v1::PodSandboxConfig pod(const std::string& name) {
  ::runtime::v1::PodSandboxConfig c;
  c.mutable_metadata()->set_name(name);
  c.mutable_metadata()->set_namespace_("bench");
  c.mutable_metadata()->set_uid(name);
  (*c.mutable_labels())["app"] = "bench";
  c.mutable_linux()->set_cgroup_parent("/" + kTag);
  return c;
}

// RunPodSandbox `n` times; the call's time each (ms), and the pods' ids.
std::vector<double> run_pods(runtime::CriRpc& rpc, const std::string& prefix, int n, std::vector<std::string>& ids) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clk::now();
    auto id = rpc.run(pod(prefix + std::to_string(i)));
    if (!checked(id, "RunPodSandbox")) continue;
    ms.push_back(secs(Clk::now() - t0) * 1000);
    ids.push_back(*id);
  }
  return ms;
}

void remove_pods(runtime::CriRpc& rpc, std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    (void)rpc.stop(id);  // teardown of a measured run: a failure leaves only lab state, removed below
    (void)rpc.remove(id);
  }
  ids.clear();
}

pid_t start_agent(const Options& o) {
  std::vector<std::string> args = {"nsenter", "--net=/run/netns/" + kTag, o.agent, "--state-dir", kDir + "/agent", "--socket",
                                   kDir + "/sock", "--cri-socket", kDir + "/cri.sock", "--mode", "enforce", "--table",
                                   kTable, "--nflog-group", "5402", "--log-level", "warn"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (kDir + "/agent.log").c_str(), O_WRONLY | O_CREAT, 0600);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "nsenter", &fa, nullptr, argv.data(), environ) != 0) pid = 0;
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; pid && i < 100; ++i) {
    auto s = json::parse(sh_out(o.cli + " --socket " + kDir + "/sock status -o json 2>/dev/null"), nullptr, false);
    if (!s.is_discarded() && s.value("ruleset_applied", false) && s.value("discovery_synced", false)) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pid;
}

// Pod starts with the agent: from the call to the address in the endpoint set (ms), and from the call's
// return to it.
void enforced(runtime::CriRpc& rpc, nft::NftWriter& probe, int n, std::vector<std::string>& ids, std::vector<double>& total,
              std::vector<double>& after, std::vector<double>& call) {
  for (int i = 0; i < n; ++i) {
    auto t0 = Clk::now();
    auto id = rpc.run(pod("pod-" + std::to_string(i)));
    if (!checked(id, "RunPodSandbox")) continue;
    auto t1 = Clk::now();
    ids.push_back(*id);
    call.push_back(secs(t1 - t0) * 1000);
    auto st = rpc.status(*id, false);
    auto ip = st ? IpAddr::parse(st->status().network().ip()) : std::nullopt;
    if (!ip) continue;
    nft::Bytes key(ip->bytes.begin(), ip->bytes.begin() + 4);
    while (secs(Clk::now() - t0) < 10) {
      auto has = probe.has_element(kTable, "eps4", key);
      if (has && *has) {
        total.push_back(secs(Clk::now() - t0) * 1000);
        after.push_back(secs(Clk::now() - t1) * 1000);
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

void row(const std::string& what, const std::vector<double>& v) {
  out(fmt::format("| {} | {} | {:.0f} ms | {:.0f} ms |\n", what, v.size(), percentile(v, 0.5), percentile(v, 0.99)));
}

}  // namespace

void cri_pods(const Options& o) {
  out("\n## 9. Kubernetes pod start (CRI, containerd) to its endpoint enforced\n\n");
  if (auto why = missing(); !why.empty()) return out("skipped: " + why + "\n");
  sh(kLab + " down " + kDir + " " + kTag);
  if (sh(kLab + " up " + kDir + " " + kTag + " 10.89.81") != 0) return out("containerd lab FAILED to start\n");
  const int n = o.smoke ? 3 : 25;
  {
    runtime::CriRpc rpc(kDir + "/cri.sock");
    std::vector<std::string> ids;
    auto baseline = run_pods(rpc, "base-", n, ids);  // RunPodSandbox alone, no agent
    remove_pods(rpc, ids);
    pid_t agent = start_agent(o);
    // The first pod shows the agent where this containerd mounts pods' namespaces (before it, only the 5 s
    // relist finds pods): wait for it, so the figures are the steady state's.
    run_pods(rpc, "warm-", 1, ids);
    auto warm = Clk::now();
    while (secs(Clk::now() - warm) < 10) {
      auto s = json::parse(sh_out(o.cli + " --socket " + kDir + "/sock status -o json 2>/dev/null"), nullptr, false);
      if (!s.is_discarded() && s.value("endpoints", 0) >= 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    out(fmt::format("The agent found the first pod {:.1f} s after its start.\n\n", secs(Clk::now() - warm)));
    nft::NftWriter probe;
    in_netns("/run/netns/" + kTag, [&] { return probe.open(); });
    std::vector<double> total, after, call;
    enforced(rpc, probe, n, ids, total, after, call);
    if (agent > 0) {
      kill(agent, SIGTERM);
      waitpid(agent, nullptr, 0);
    }
    remove_pods(rpc, ids);
    out(fmt::format("{} pods started one after the other (containerd {}, no event stream: inotify on the pods' network "
                    "namespaces and a relist); enforced = the pod's address in the kernel's endpoint set.\n\n",
                    n, sh_out("containerd --version | cut -d' ' -f3 | tr -d '\\n'")));
    out("| | pods | p50 | p99 |\n| --- | --- | --- | --- |\n");
    row("baseline: RunPodSandbox alone, no agent", baseline);
    row("RunPodSandbox with the agent running", call);
    row("RunPodSandbox called → endpoint enforced", total);
    row("RunPodSandbox returned → endpoint enforced", after);
    const double b50 = percentile(baseline, 0.5), b99 = percentile(baseline, 0.99);
    out(fmt::format("| ratio enforced / baseline | | **{:.2f}** | {:.2f} |\n", b50 > 0 ? percentile(total, 0.5) / b50 : 0,
                    b99 > 0 ? percentile(total, 0.99) / b99 : 0));
    if (total.size() != call.size()) out(fmt::format("WARNING: {} pods never enforced\n", call.size() - total.size()));
  }
  sh(kLab + " down " + kDir + " " + kTag);
  sh("rmdir /sys/fs/cgroup/" + kTag + " 2>/dev/null");
}

}  // namespace topowall::bench
