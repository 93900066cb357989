// Section 12: cluster scale, simulated. One real agent in cluster mode, a real etcd on loopback, and a
// load generator (this process, over etcd's JSON gateway as the agent's own client speaks it) playing
// N nodes x M endpoints, each node announcing its range as a real node does. The kernel is observed
// directly (set-element notifications), never the agent's word. Baselines in the same run: the same
// agent's RSS and idle CPU with no remote endpoint, the latency with no background churn, etcd's own
// put latency and full read time.
#include <signal.h>

#include <thread>

#include "cluster_sim.hpp"
#include "etcd.hpp"
#include "set_watch.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

const char* const kCut =
    "table inet twb_cut {\n chain out {\n  type filter hook output priority -300; policy accept;\n"
    "  tcp dport 24990 reject with tcp reset\n }\n}\n";

struct Sizes {
  int nodes, per_node;
  double rate, churn_s, idle_s, outage_s;
  int quiet;
};

std::vector<std::string> agent_flags(const Etcd& etcd) {
  return {"--mode", "enforce", "--cluster-etcd", etcd.url, "--node-name", "twb-local", "--cluster-range", "10.99.0.0/24"};
}

// Latencies (ms) from the put's acknowledgement and from its sending to the kernel; the count never seen.
struct Lat {
  std::vector<double> from_ack, from_send, put;
  std::size_t missing = 0, failed = 0;
};

Lat latencies(const Mirror& mirror, const std::vector<Change>& cs) {
  Lat l;
  for (const auto& c : cs) {
    if (!c.ok) {
      ++l.failed;
      continue;
    }
    l.put.push_back(secs(c.acked - c.sent) * 1000);
    auto t = mirror.added_after(c.addr, c.sent);
    if (!t) {
      ++l.missing;
      continue;
    }
    l.from_send.push_back(secs(*t - c.sent) * 1000);
    l.from_ack.push_back(std::max(0.0, secs(*t - c.acked) * 1000));  // before the ack: enforced already
  }
  return l;
}

constexpr int kWriters = 32;

void lat_row(const std::string& name, const Lat& l, std::size_t n) {
  out(fmt::format("| {} | {} | {:.1f} ms | {:.1f} ms | {:.1f} ms | {:.1f} ms | {:.1f} / {:.1f} ms | {} |\n", name, n,
                  percentile(l.from_ack, 0.5), percentile(l.from_ack, 0.99), percentile(l.from_ack, 1.0),
                  percentile(l.from_send, 0.99), percentile(l.put, 0.5), percentile(l.put, 0.99),
                  l.missing + l.failed));
}

// The agent with no remote endpoint: the RSS and idle-CPU baseline.
bool empty_baseline(const Options& o, const Etcd& etcd, double idle_s, long* rss, double* cpu) {
  Agent a;
  if (!a.start(o, agent_flags(etcd))) return false;
  for (int i = 0; i < 50 && !a.status(o).value("cluster_synced", false); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double c0 = a.cpu_seconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
  *cpu = a.cpu_seconds() - c0;
  *rss = a.rss_kib();
  return true;
}

// Idle CPU, then changes one at a time (the baseline) and at the full rate: CPU and latency rows.
void churn_rows(const Sizes& z, double idle0, long rss0, const Agent& agent, SimCluster& sim, Mirror& mirror, EtcdConn& conn) {
  const double c0 = agent.cpu_seconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(z.idle_s));
  const double idle = agent.cpu_seconds() - c0;
  out(fmt::format("| agent CPU while idle | {:.1f} % | {:.1f} % with no remote endpoint |\n", 100 * idle / z.idle_s,
                  100 * idle0 / z.idle_s));
  // The agent checks its heap every 10 s and returns what the sync's peak freed (`heap_trims`).
  const auto n = static_cast<double>(sim.endpoints());
  const long rss = agent.rss_kib();
  out(fmt::format("| agent RSS after that idle time | {:.1f} MiB ({:.0f} bytes per remote endpoint) | |\n", rss / 1024.0,
                  static_cast<double>(rss - rss0) * 1024 / n));

  std::vector<Change> quiet;
  for (int i = 0; i < z.quiet; ++i) {
    quiet.push_back(sim.move_one(conn));
    (void)mirror.wait([&] { return mirror.mismatches_locked() == 0; }, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Many writers, and each waits for its acknowledgement: etcd's put latency can still cap the rate (on this
  // 2-core machine at about 70 puts/s), so the rate reported is the one achieved, and a second run moves
  // 4 endpoints of a node per transaction (a rollout) to bring the agent the asked rate of changes.
  struct Run {
    std::vector<Change> changes;
    double wall = 0, achieved = 0;
  };
  auto run = [&](int batch) {
    Run r;
    const double c1 = agent.cpu_seconds();
    const auto t1 = Clk::now();
    r.changes = sim.churn(z.rate, z.churn_s, kWriters, batch);
    r.wall = secs(Clk::now() - t1);
    const double busy = agent.cpu_seconds() - c1;
    r.achieved = static_cast<double>(r.changes.size()) / r.wall;
    (void)mirror.wait([&] { return mirror.mismatches_locked() == 0; }, 10);
    out(fmt::format("| agent CPU per remote change ({} changes in {:.1f} s: {:.0f} changes/s, {} per transaction) | {:.0f} us "
                    "({:.1f} % of a core) | idle: {:.1f} % |\n",
                    r.changes.size(), r.wall, r.achieved, batch,
                    1e6 * (busy - idle / z.idle_s * r.wall) / static_cast<double>(r.changes.size()), 100 * busy / r.wall,
                    100 * idle / z.idle_s));
    return r;
  };
  const Run single = run(1), rollout = run(4);
  out("\n");
  out("Remote write to the address in the kernel (an endpoint moves to a new address: the put, then its `ids4` element "
      "as the kernel notifies it):\n\n| load | changes | p50 from put ack | p99 | max | p99 from put sent | etcd put p50 / p99 | "
      "not seen |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  lat_row("one change at a time (baseline)", latencies(mirror, quiet), quiet.size());
  lat_row(fmt::format("{:.0f} changes/s achieved ({:.0f} asked, {} writers, one per put)", single.achieved, z.rate, kWriters),
          latencies(mirror, single.changes), single.changes.size());
  lat_row(fmt::format("{:.0f} changes/s achieved ({:.0f} asked, 4 per transaction)", rollout.achieved, z.rate),
          latencies(mirror, rollout.changes), rollout.changes.size());
}

// The agent cut off from etcd (its port refused) while the cluster keeps changing; then back.
void resync_rows(const Options& o, const Sizes& z, Agent& agent, SimCluster& sim, Mirror& mirror, const SetWatch& watch) {
  if (!nft_file(kCut)) return out("\ncutting the agent off etcd FAILED\n");
  auto during = sim.churn(z.rate, z.outage_s, kWriters);
  const bool cut_seen = !agent.status(o).value("cluster_connected", true);
  run_cmd({"nft", "delete", "table", "inet", "twb_cut"});
  const auto t0 = Clk::now();
  const bool healed = mirror.wait([&] { return mirror.mismatches_locked() == 0; }, 60);
  const double heal_s = secs(Clk::now() - t0);
  out(fmt::format("\nResync: the agent's etcd port refused for {:.0f} s while {} endpoints moved; from the port's return "
                  "to the kernel matching etcd: {} (the agent retries with a backoff of 0.5 s doubling to 10 s, and then "
                  "reads everything again){}.\n",
                  z.outage_s, during.size(), healed ? fmt::format("{:.2f} s", heal_s) : "not within 60 s FAILED",
                  cut_seen ? "" : "; the agent did not report itself disconnected"));
  const long end = agent.rss_kib();
  // The agent checks its heap every 10 s: what the resync's full read freed goes back at the next check.
  std::this_thread::sleep_for(std::chrono::duration<double>(z.idle_s + 1));
  const auto c = agent.status(o).value("counters", json::object());
  out(fmt::format("\nAgent RSS at the end: {:.1f} MiB; {:.0f} s later {:.1f} MiB (heap trims {}, the last {} ms); its peak "
                  "over the whole run {:.1f} MiB (the deploy manifests' limit: 512 MiB); notifications lost by the "
                  "benchmark's reader: {}.\n",
                  end / 1024.0, z.idle_s + 1, agent.rss_kib() / 1024.0, c.value("heap_trims", 0), c.value("heap_trim_ms", 0),
                  agent.rss_kib(true) / 1024.0, watch.overruns()));
}
}  // namespace

void cluster_scale(const Options& o) {
  const Sizes z = o.smoke ? Sizes{10, 10, 20, 2, 1, 1, 10} : Sizes{1000, 100, 200, 30, 10, 5, 50};
  out(fmt::format("\n## 12. Cluster scale, simulated: {} nodes x {} endpoints, {} changes/s\n\n", z.nodes, z.per_node, z.rate));
  if (sh("command -v etcd >/dev/null") != 0) return out("etcd is not installed: section skipped (tools/install-deps.sh)\n");
  Etcd etcd;
  etcd.extra_port = "24992";  // the load generator's listener: cutting the agent's leaves it up
  if (!etcd.start()) return out("etcd did not start FAILED\n");
  long rss0 = 0;
  double idle0 = 0;
  if (!empty_baseline(o, etcd, z.idle_s, &rss0, &idle0)) return out("the agent did not start FAILED\n");

  Mirror mirror;
  SimCluster sim(z.nodes, z.per_node, mirror);
  EtcdConn conn("24992");
  auto t0 = Clk::now();
  if (!checked(sim.load(conn), "writing the simulated cluster to etcd")) return;
  const double load_s = secs(Clk::now() - t0);
  t0 = Clk::now();
  auto all = conn.post("/v3/kv/range", {{"key", b64("/topowall/v1/")}, {"range_end", b64("/topowall/v10")}});
  const double read_s = secs(Clk::now() - t0);
  if (!checked(all, "etcd's own full read")) return;

  SetWatch watch("twb_agent", "ids4", [&](std::uint32_t a, bool added, Clk::time_point t) { mirror.kernel(a, added, t); });
  if (!watch.ok()) return out("subscribing to nftables notifications FAILED\n");
  Agent agent;
  t0 = Clk::now();
  if (!agent.start(o, agent_flags(etcd))) return out("the agent did not start FAILED\n");
  const auto n = sim.endpoints();
  const bool synced = mirror.wait([&] { return mirror.present_locked() >= n; }, o.smoke ? 30 : 180);
  const double sync_s = secs(Clk::now() - t0);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the state saved, the loop quiet
  const long rss = agent.rss_kib();
  out(fmt::format("etcd: {} endpoints and {} ranges written in {:.1f} s (transactions of 100); etcd's own full read of "
                  "the prefix {:.2f} s ({:.1f} MB of JSON).\n\n",
                  n, z.nodes, load_s, read_s, static_cast<double>(all->dump().size()) / 1e6));
  out("| figure | with the simulated cluster | baseline (same run) |\n| --- | ---: | ---: |\n");
  out(fmt::format("| initial sync: agent start to every remote address in the kernel | {} | etcd's full read: {:.2f} s |\n",
                  synced ? fmt::format("{:.2f} s", sync_s)
                         : fmt::format("not reached in {:.0f} s ({} of {}) FAILED", sync_s, mirror.present(), n),
                  read_s));
  out(fmt::format("| agent RSS 2 s after the sync | {:.1f} MiB ({:.0f} bytes per remote endpoint) | {:.1f} MiB with none |\n", rss / 1024.0,
                  static_cast<double>(rss - rss0) * 1024 / static_cast<double>(n), rss0 / 1024.0));
  if (!synced) return;

  churn_rows(z, idle0, rss0, agent, sim, mirror, conn);
  resync_rows(o, z, agent, sim, mirror, watch);
  out("\nTarget: p99 from the put's acknowledgement to the kernel at most 100 ms at 200 changes/s.\n");
}

}  // namespace topowall::bench
