// Section 5: a blocked SYN to its alert on a watch connection, and the agent
// under a flood of blocked SYNs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "common.hpp"
#include "rtnl/addresses.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

sockaddr_in address(const std::string& ip, int port) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &dst.sin_addr);
  return dst;
}

// Each blocked SYN to a new port, timed to its alert on the watch connection.
void alert_latency(const Options& o, Lab& lab, Watch& watch) {
  std::vector<double> lat;
  const int n = o.smoke ? 20 : 300;
  checked(rtnl::run_in_netns(lab.ns_path("a"), [&]() -> Status {
    for (int i = 0; i < n; ++i) {
      int port = 20000 + i;
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      auto dst = address(lab.ip("b"), port);
      auto t0 = Clk::now();
      (void)connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      for (;;) {
        auto line = watch.line(1000);
        if (line.empty()) break;
        auto j = json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "alert" && j.value("port", 0) == port) {
          lat.push_back(secs(Clk::now() - t0) * 1000);
          break;
        }
      }
      ::close(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // stay under the log rate limit
    }
    return ok_status();
  }), "enter the lab namespace");
  out(fmt::format("{} blocked SYNs, each to a new port: alert received for {}.\n\n", n, lat.size()));
  out(fmt::format("| p50 | p99 | target p99 |\n| ---: | ---: | ---: |\n| {:.2f} ms | {:.2f} ms | ≤ 20 ms ({}) |\n",
                  percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.99) <= 20 ? "met" : "missed"));
}

// Flood: blocked SYNs as fast as one core sends them.
void alert_flood(const Options& o, Lab& lab, Agent& agent) {
  auto before = agent.status(o)["counters"];
  double cpu0 = agent.cpu_seconds();
  auto t0 = Clk::now();
  std::uint64_t sent = 0;
  const double dur = o.smoke ? 0.5 : 3.0;
  checked(rtnl::run_in_netns(lab.ns_path("a"), [&]() -> Status {
    auto dst = address(lab.ip("b"), 0);
    while (secs(Clk::now() - t0) < dur) {
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      dst.sin_port = htons(static_cast<std::uint16_t>(30000 + sent % 20000));
      (void)connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      ::close(s);
      ++sent;
    }
    return ok_status();
  }), "enter the lab namespace");
  double wall = secs(Clk::now() - t0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  double cpu = agent.cpu_seconds() - cpu0;
  auto after = agent.status(o)["counters"];
  auto dropped = sh_out("nft list chain inet twb_agent alert_drop | grep -o 'packets [0-9]*' | tail -1");
  out(fmt::format("\nFlood of blocked SYNs for {:.1f} s: {} sent ({:.0f}/s); the ruleset logged at its rate limit and the "
                  "agent handled {} log messages ({} lost to ENOBUFS); kernel drop counter: {}; agent CPU {:.1f}% of one core "
                  "(target < 100%).\n",
                  wall, sent, static_cast<double>(sent) / wall,
                  after.value("nflog_packets", 0) - before.value("nflog_packets", 0),
                  after.value("nflog_enobufs", 0) - before.value("nflog_enobufs", 0), dropped.empty() ? "?" : dropped.substr(0, dropped.size() - 1),
                  cpu / (wall + 0.5) * 100));
}

}  // namespace

void alerts(const Options& o) {
  out("\n## 5. Alerts: blocked SYN to alert and pending entry\n\n");
  AgentLab l("10.232.2");
  [[maybe_unused]] auto& [lab, server, agent] = l;  // the server only listens
  if (!agent.start(o, {"--mode", "enforce", "--alert-sink", "jsonl:/dev/null"})) return;
  // The agent publishes each logged packet as it handles it, in the same step
  // that records the pending entry.
  Watch watch(agent.sock);
  if (!watch.ok()) return;
  alert_latency(o, lab, watch);
  alert_flood(o, lab, agent);
}

}  // namespace topowall::bench
