// Section 11: a storm of new connections at the machine's limit against the learning agent in cluster
// mode (a real etcd on loopback), while the control socket answers `status` and the agent keeps its
// etcd lease. Baseline: the same agent's `status` latency with no flood, in the same run.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common.hpp"
#include "etcd.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

// One `status` request on a fresh control connection, as the CLI makes it; its latency in ms, or -1.
double status_ms(const std::string& sock) {
  auto t0 = Clk::now();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  const std::string req = "{\"v\":1,\"method\":\"status\"}\n";
  bool ok = write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size());
  std::string got;
  char buf[16384];
  while (ok && got.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (got.find("\"ok\":true") == std::string::npos) return -1;
  return secs(Clk::now() - t0) * 1000;
}

// What one phase saw: `status` latencies and the agent's lease as etcd reports it.
struct Phase {
  std::vector<double> ms;
  int failed = 0;
  long min_ttl = 1 << 30;    // the lease's lowest remaining TTL (s)
  bool lease_changed = false;  // a new lease: the old one expired or was lost
};

// Samples `status` every 20 ms and the lease every 250 ms until `stop`, skipping samples sent while
// `paused` (the agent is stopped on purpose then: no answer can be expected).
void sample(const Agent& agent, const Etcd& etcd, const std::string& lease, std::atomic<bool>& stop,
            const std::atomic<bool>& paused, Phase& ph) {
  std::thread lease_watch([&] {
    while (!stop) {
      auto t = etcd.call("/v3/lease/timetolive", {{"ID", lease}});
      const json v = t.value("TTL", json("-1"));  // etcd's JSON gateway writes int64 as a string
      const long ttl = v.is_string() ? std::strtol(v.get<std::string>().c_str(), nullptr, 10) : v.get<long>();
      ph.min_ttl = std::min(ph.min_ttl, ttl);
      auto all = etcd.call("/v3/lease/leases", json::object());
      if (all.contains("leases") && all["leases"].size() == 1 && all["leases"][0].value("ID", "") != lease)
        ph.lease_changed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  while (!stop) {
    if (paused) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    double ms = status_ms(agent.sock);
    if (paused) continue;  // it straddled the pause
    if (ms < 0) ++ph.failed;
    else ph.ms.push_back(ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  lease_watch.join();
}

}  // namespace

void storm(const Options& o) {
  out("\n## 11. Storm: `status` and the etcd lease during a flood of new connections\n\n");
  if (sh("command -v etcd >/dev/null") != 0) return out("etcd is not installed: section skipped (tools/install-deps.sh)\n");
  Etcd etcd;
  if (!etcd.start()) return out("etcd did not start FAILED\n");
  AgentLab l("10.232.7");
  [[maybe_unused]] auto& [lab, server, agent] = l;
  if (!agent.start(o, {"--mode", "learn", "--cluster-etcd", etcd.url, "--node-name", "twb-storm", "--cluster-range",
                       "10.232.7.0/24"}))
    return;
  std::string lease;
  for (int i = 0; i < 50 && lease.empty(); ++i) {
    auto all = etcd.call("/v3/lease/leases", json::object());
    if (all.contains("leases") && !all["leases"].empty()) lease = all["leases"][0].value("ID", "");
    if (lease.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (lease.empty()) return out("the agent took no etcd lease FAILED\n");
  const unsigned clients = 2 * std::max(1u, std::thread::hardware_concurrency());
  const double dur = o.smoke ? 1.0 : 10.0;
  out(fmt::format("Agent learning, cluster mode (etcd on loopback, lease TTL 15 s, renewed every 5 s); {} clients opening "
                  "TCP connections as fast as they can for {:.0f} s per phase; `status` on a fresh control connection "
                  "every 20 ms; etcd's `lease/timetolive` every 250 ms.\n\n",
                  clients, dur));
  out("| phase | connections/s | `status` answered | p50 | p99 | max | ENOBUFS | resyncs (coalesced) | lease: lowest TTL left, same lease |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
  // 1: no flood (the baseline); 2: the flood; 3: the flood with the agent stopped for 1 s in the middle, as
  // a starved CPU does: its events overrun the buffer and it recovers from a dump while the flood goes on.
  for (int kind : {0, 1, 2}) {
    auto before = agent.status(o)["counters"];
    Phase ph;
    std::atomic<bool> stop{false}, paused{false};
    std::thread sampler([&] { sample(agent, etcd, lease, stop, paused, ph); });
    ConnResult r;
    if (kind == 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(dur));
    } else {
      std::thread pauser;
      if (kind == 2)
        pauser = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::duration<double>(dur / 3));
          paused = true;
          kill(agent.pid, SIGSTOP);
          std::this_thread::sleep_for(std::chrono::milliseconds(o.smoke ? 200 : 1000));
          kill(agent.pid, SIGCONT);
          paused = false;
        });
      r = connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, dur, clients);
      if (pauser.joinable()) pauser.join();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // what is still queued: in the figures
    stop = true;
    sampler.join();
    auto after = agent.status(o)["counters"];
    auto d = [&](const char* k) { return after.value(k, 0L) - before.value(k, 0L); };
    const char* name[] = {"no flood (baseline)", "flood", "flood, agent stopped 1 s (overrun)"};
    out(fmt::format("| {} | {:.0f} | {} of {} | {:.1f} ms | {:.1f} ms | {:.1f} ms | {} | {} ({}) | {} s, {} |\n", name[kind],
                    r.rate(), ph.ms.size(), ph.ms.size() + static_cast<std::size_t>(ph.failed), percentile(ph.ms, 0.5),
                    percentile(ph.ms, 0.99), percentile(ph.ms, 1.0), d("conntrack_enobufs"), d("conntrack_resyncs"),
                    d("conntrack_resyncs_coalesced"), ph.min_ttl, ph.lease_changed ? "NO (expired)" : "yes"));
  }
  out("\nTarget: `status` p99 under 100 ms during the flood, and the lease never expires (same lease throughout, "
      "its TTL never reaches 0).\n");
}

}  // namespace topowall::bench
