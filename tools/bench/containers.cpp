// Section 4: real podman containers, from `podman run` to their endpoint in
// the kernel.
#include <cstdlib>
#include <thread>

#include "common.hpp"
#include "nft/writer.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

const std::string kNet = "topowall-bench", kImage = "localhost/topowall-busybox:1";

void remove_containers() { sh("podman rm -f -t 0 $(podman ps -aq --filter label=topowall-bench=1)"); }

void remove_network() {
  remove_containers();
  sh("podman network rm -f " + kNet);
}

// `podman run -d` returns once the container runs (its start event is out);
// from there, poll the kernel for the address in the endpoint set.
std::vector<double> enforced_latency(int n) {
  nft::NftWriter probe;
  checked(probe.open(), "open the nftables socket");
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    auto ip = fmt::format("10.89.79.{}", 10 + i);
    if (sh(fmt::format("podman run -d --name topowall-bench-{} --label topowall-bench=1 --label app=bench --network {} --ip {} {} sleep 600",
                       i, kNet, ip, kImage)) != 0)
      continue;
    auto t0 = Clk::now();
    auto a = *IpAddr::parse(ip);
    nft::Bytes key(a.bytes.begin(), a.bytes.begin() + 4);
    while (secs(Clk::now() - t0) < 5) {
      auto has = probe.has_element("twb_agent", "eps4", key);
      if (has && *has) {
        lat.push_back(secs(Clk::now() - t0) * 1000);
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return lat;
}

}  // namespace

void container_start(const Options& o) {
  out("\n## 4. Container start (runtime event) to its endpoint enforced\n\n");
  const char* rs = getenv("TOPOWALL_RUNTIME_SOCKET");
  std::string runtime = rs ? rs : "/run/topowall-lab/podman.sock";
  if (sh("command -v podman") != 0 || sh("test -S " + runtime) != 0) {
    out("skipped: no podman API service (tools/test.sh or tools/lab/podman-env.sh starts one)\n");
    return;
  }
  remove_network();
  sh("podman network create --disable-dns --subnet 10.89.79.0/24 " + kNet);
  Agent agent;
  if (!agent.start(o, {"--mode", "enforce", "--runtime-socket", runtime, "--no-discover-netns"})) {
    remove_network();
    return;
  }
  const int n = o.smoke ? 3 : 30;
  auto lat = enforced_latency(n);
  auto inner = agent.status(o).value("event_to_enforced_ms", json::object());
  agent.stop();
  remove_containers();
  out(fmt::format("{} containers started; enforced (address in the kernel's endpoint set) for {}.\n\n", n, lat.size()));
  out("| measured from | p50 | p99 |\n| --- | ---: | ---: |\n");
  out(fmt::format("| `podman run -d` returned (includes podman's event delivery) | {:.1f} ms | {:.1f} ms |\n",
                  percentile(lat, 0.5), percentile(lat, 0.99)));
  out(fmt::format("| the runtime event reached the agent (agent's own histogram, {} samples) | {:.1f} ms | {:.1f} ms |\n",
                  inner.value("samples", 0), inner.value("p50", 0.0), inner.value("p99", 0.0)));
  out("\nThe first row ends when the address is in the kernel's `eps4` (polled); the second is the agent's: event "
      "received, container inspected through the API, endpoint programmed. The difference is podman's event pipeline.\n");
  remove_network();
}

}  // namespace topowall::bench
