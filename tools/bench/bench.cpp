// topowall-bench: the benchmark suite. Every figure is measured next to its
// baseline in the same run and reported as a ratio. Root only; it builds its
// own lab of namespaces (prefix twb) and removes it.
//
//   topowall-bench [--smoke] [--report FILE] [--agent PATH] [--only SECTION]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "lab.hpp"
#include "nft/writer.hpp"
#include "rtnl/addresses.hpp"
#include "topowall/topology/ruleset.hpp"

extern char** environ;

using namespace topowall;
using namespace topowall::testing;
using Clk = std::chrono::steady_clock;
using nlohmann::json;

namespace {

struct Options {
  bool smoke = false;
  std::string agent;
  std::string cli;
  std::string only;
  std::string hold = "tw";
};

std::string g_report;
void out(const std::string& s) {
  g_report += s;
  fmt::print("{}", s);
  std::fflush(stdout);
}

// A step whose failure spoils the figures: said in the report (its "FAILED" fails the smoke test).
template <typename T>
bool checked(const Result<T>& r, const std::string& what) {
  if (!r) out(fmt::format("\n{} FAILED: {}\n", what, r.error().message));
  return r.ok();
}

double secs(Clk::duration d) { return std::chrono::duration<double>(d).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// --- load generation ------------------------------------------------------------

// New TCP connections per second from one namespace to a server in another:
// connect, then close with RST (no TIME_WAIT), as fast as possible or paced.
struct ConnResult {
  std::uint64_t ok = 0, failed = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

ConnResult connect_loop(const std::string& ns_path, const std::string& ip, int port, double duration, double pace = 0) {
  ConnResult r;
  checked(rtnl::run_in_netns(ns_path, [&]() -> Status {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    auto t0 = Clk::now();
    auto end = t0 + std::chrono::duration<double>(duration);
    std::uint64_t i = 0;
    for (;;) {
      auto now = Clk::now();
      if (now >= end) break;
      if (pace > 0) {
        auto due = t0 + std::chrono::duration_cast<Clk::duration>(std::chrono::duration<double>(static_cast<double>(i) / pace));
        if (due > now) std::this_thread::sleep_until(due);
      }
      ++i;
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      timeval tv{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) ++r.ok;
      else ++r.failed;
      linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::close(fd);
    }
    r.seconds = secs(Clk::now() - t0);
    return ok_status();
  }), "enter the lab namespace");
  return r;
}

// `clients` generators at once (one per core by default): the node's capacity
// for new connections, not one client's round-trip latency.
ConnResult connect_parallel(const std::string& ns_path, const std::string& ip, int port, double duration, unsigned clients) {
  std::vector<ConnResult> rs(clients);
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < clients; ++i)
    ts.emplace_back([&, i] { rs[i] = connect_loop(ns_path, ip, port, duration); });
  for (auto& t : ts) t.join();
  ConnResult total;
  for (const auto& r : rs) {
    total.ok += r.ok;
    total.failed += r.failed;
    total.seconds = std::max(total.seconds, r.seconds);
  }
  return total;
}

int run_cmd(const std::vector<std::string>& args, rusage* ru = nullptr, double* wall = nullptr) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  auto t0 = Clk::now();
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) return -1;
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  rusage local{};
  wait4(pid, &status, 0, ru ? ru : &local);
  if (wall) *wall = secs(Clk::now() - t0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// --- synthetic rulesets -------------------------------------------------------------

// `endpoints` addresses over 1000 workloads (ids 16..), `edges` random edges, and
// the lab's client (id 16) -> server (id 17) tcp/port edge; every workload enforced.
// `client_port`/`server_port`: the lab hosts' host-side ports, so the guard lets them send; every synthetic
// endpoint gets a port of its own too, so the guard's sets are as large as on a real node.
topology::RulesetModel synthetic(const std::string& table, std::size_t endpoints, std::size_t edges,
                                 const std::string& client, const std::string& server, int port,
                                 std::uint32_t client_port = 0, std::uint32_t server_port = 0) {
  topology::RulesetModel m;
  m.cfg.table = table;
  std::mt19937 rng(42);
  const std::uint32_t workloads = 1000;
  for (std::uint32_t i = 0; i < workloads; ++i) m.ids.insert(16 + i);
  m.ids.insert(topology::kHostId);
  m.ids.insert(topology::kWorldId);
  for (std::size_t i = 0; i < endpoints; ++i) {
    auto a = IpAddr::v4(0x0ac80000 + static_cast<std::uint32_t>(i));
    m.ep4[a] = 16 + static_cast<std::uint32_t>(i % workloads);
    m.port4[a] = 1000000 + static_cast<std::uint32_t>(i);
  }
  m.ep4[*IpAddr::parse(client)] = 16;
  m.ep4[*IpAddr::parse(server)] = 17;
  if (client_port) m.port4[*IpAddr::parse(client)] = client_port;
  if (server_port) m.port4[*IpAddr::parse(server)] = server_port;
  m.net4 = topology::disjoint_intervals(AF_INET, {}, topology::kWorldId);
  m.net6 = topology::disjoint_intervals(AF_INET6, {}, topology::kWorldId);
  while (m.allow.size() < edges)
    m.allow.insert({16 + static_cast<std::uint32_t>(rng() % workloads), 16 + static_cast<std::uint32_t>(rng() % workloads), 6,
                    static_cast<std::uint16_t>(1 + rng() % 65000)});
  m.allow.insert({16, 17, 6, static_cast<std::uint16_t>(port)});
  m.allow.insert({16, 17, 6, 5201});  // iperf3
  for (auto id : m.ids)
    if (id >= 16) m.enforced.insert(id);
  m.cfg.failsafe = {};
  return m;
}

// A naive firewall: one rule per allowed edge, the lab's rule last. With
// `workload_sets`, each rule names its workloads' addresses (the synthetic
// workloads have 10 replicas), as selector-based policy engines write them;
// without, a rule is one address pair (a cheaper match than any real edge needs).
std::string naive_ruleset(const std::string& table, std::size_t rules, const std::string& client, const std::string& server,
                          int port, const std::string& lab_net, bool workload_sets = true) {
  std::mt19937 rng(43);
  const std::uint32_t endpoints = 10000, workloads = 1000;
  auto replicas = [&](std::uint32_t w) {
    std::string v;
    for (std::uint32_t a = w; a < endpoints; a += workloads)
      v += (v.empty() ? "" : ", ") + IpAddr::v4(0x0ac80000 + a).to_string();
    return "{ " + v + " }";
  };
  std::string s = fmt::format("table inet {} {{\n chain forward {{\n  type filter hook forward priority -5; policy accept;\n"
                              "  ct state established,related accept\n",
                              table);
  for (std::size_t i = 0; i + 1 < rules; ++i) {
    if (workload_sets) {
      std::uint32_t src = rng() % workloads, dst = rng() % workloads;
      s += fmt::format("  ip saddr {} ip daddr {} tcp dport {} accept\n", replicas(src), replicas(dst), 1 + rng() % 65000);
    } else {
      s += fmt::format("  ip saddr {} ip daddr {} tcp dport {} accept\n", IpAddr::v4(0x0ac80000 + rng() % endpoints).to_string(),
                       IpAddr::v4(0x0ac80000 + rng() % endpoints).to_string(), 1 + rng() % 65000);
    }
  }
  s += fmt::format("  ip saddr {} ip daddr {} tcp dport {{ {}, 5201 }} accept\n  ip saddr {} drop\n }}\n}}\n", client, server, port, lab_net);
  return s;
}

bool nft_file(const std::string& text, double* wall = nullptr, rusage* ru = nullptr) {
  std::string path = "/tmp/topowall-bench.nft";
  std::ofstream(path) << text;
  return run_cmd({"nft", "-f", path}, ru, wall) == 0;
}

double iperf(Lab& lab, double seconds) {
  sh("ip netns exec " + lab.ns("b") + " iperf3 -s -1 -D -p 5201");
  for (int i = 0; i < 20 && sh("ip netns exec " + lab.ns("b") + " ss -ltn | grep -q :5201") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto text = sh_out(fmt::format("ip netns exec {} iperf3 -c {} -p 5201 -t {} --connect-timeout 3000 -J 2>/dev/null", lab.ns("a"), lab.ip("b"), seconds));
  auto j = json::parse(text, nullptr, false);
  try {
    return j.at("end").at("sum_received").at("bits_per_second").get<double>() / 1e9;
  } catch (const std::exception&) {
    out("WARNING: iperf3 gave no result\n");
    return 0;
  }
}

// --- sections -------------------------------------------------------------------

void datapath(const Options& o) {
  out("\n## 1. Datapath: new TCP connections per second through the node\n\n");
  Lab lab("twb", "10.232.0", {"a", "b"});
  if (!lab.ok()) {
    out("lab setup failed\n");
    return;
  }
  Server server(lab.ns_path("b"), 8080);
  const double dur = o.smoke ? 0.3 : 2.0;
  const int rounds = o.smoke ? 1 : 7;
  const unsigned clients = std::max(2u, std::thread::hardware_concurrency());
  const std::size_t endpoints = o.smoke ? 1000 : 10000;
  const std::string ct_table =
      "table inet twb_ct {\n chain forward {\n  type filter hook forward priority -5; policy accept;\n"
      "  ct state established,related accept\n }\n}\n";
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1500)); };
  // The kernel finishes a big table's load or removal in workers (hash table
  // resizes, deferred frees): settle() lets that end before a measurement.
  // Each configuration: load it, measure, unload. Rounds interleave all of
  // them, so slow drift of this machine hits every configuration alike.
  struct Config {
    std::string name;
    std::function<bool()> load;
    std::function<void()> unload;
    std::vector<double> rates;
  };
  std::vector<Config> cfgs;
  auto no_unload = [] {};
  cfgs.push_back({"(a) no table of ours", [] { return true; }, no_unload, {}});
  cfgs.push_back({"(b) conntrack only (ct state established,related accept)", [&] { return nft_file(ct_table); },
                  [] { sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct"); }, {}});
  std::map<std::size_t, topology::RulesetModel> models;
  nft::NftWriter w;
  checked(w.open(), "open the nftables socket");
  const auto edge_sizes = o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000, 100000};
  for (std::size_t edges : edge_sizes) {
    models[edges] = synthetic("twb_tw", endpoints, edges, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"));
    cfgs.push_back({fmt::format("(c) topowall enforcing, {} edges, {} endpoints", edges, endpoints),
                    [&, edges] { return static_cast<bool>(w.apply(models[edges])); }, [&] { checked(w.remove(), "remove the table"); }, {}});
  }
  // (b) again right after the (c)s: each round's ratio uses the (b)s around it.
  cfgs.push_back({"(b') conntrack only again, after the (c) runs of the round", [&] { return nft_file(ct_table); },
                  [] { sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct"); }, {}});
  const auto rule_sizes = o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000};
  for (std::size_t rules : rule_sizes)
    cfgs.push_back({fmt::format("(d) naive: one nft rule per edge, {} rules", rules),
                    [&, rules] { return nft_file(naive_ruleset("twb_naive", rules, lab.ip("a"), lab.ip("b"), 8080, "10.232.0.0/24")); },
                    [] { sh("nft delete table bridge twb_naive 2>/dev/null; nft delete table inet twb_naive"); }, {}});
  cfgs.push_back({fmt::format("(d') naive, one address pair per rule, {} rules", rule_sizes.back()),
                  [&] {
                    return nft_file(naive_ruleset("twb_naive", rule_sizes.back(), lab.ip("a"), lab.ip("b"), 8080, "10.232.0.0/24", false));
                  },
                  [] { sh("nft delete table bridge twb_naive 2>/dev/null; nft delete table inet twb_naive"); }, {}});
  sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct 2>/dev/null; nft delete table bridge twb_naive 2>/dev/null; nft delete table inet twb_naive 2>/dev/null; nft delete table bridge twb_tw 2>/dev/null; nft delete table inet twb_tw 2>/dev/null");
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cfgs) {
      if (!c.load()) out(fmt::format("WARNING: {} did not load\n", c.name));
      settle();
      if (!connect_loop(lab.ns_path("a"), lab.ip("b"), 8080, 0.05).ok) out(fmt::format("WARNING: {}: the allowed edge did not pass\n", c.name));
      c.rates.push_back(connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, dur, clients).rate());
      c.unload();
      settle();
    }
  auto median = [](const Config& c) { return percentile(c.rates, 0.5); };
  auto by_name = [&](const std::string& prefix) -> const Config* {
    for (const auto& c : cfgs)
      if (c.name.rfind(prefix, 0) == 0) return &c;
    return nullptr;
  };
  const Config& a = *by_name("(a)");
  const Config& b1 = *by_name("(b) conntrack");
  const Config& b2 = *by_name("(b')");
  // Per round: a configuration against that round's baseline, the median of
  // its (a) and two (b)s (one disturbed measurement cannot move it); the
  // figure is the median over rounds (slow drift of the machine cancels).
  auto ratio = [&](const Config& c) {
    std::vector<double> v;
    for (std::size_t r = 0; r < c.rates.size(); ++r) {
      double b = percentile({a.rates[r], b1.rates[r], b2.rates[r]}, 0.5);
      if (b > 0) v.push_back(c.rates[r] / b);
    }
    return percentile(v, 0.5);
  };
  out(fmt::format("{} clients in parallel, {} s per measurement, {} interleaved rounds. Rates: median and range over "
                  "the rounds. Ratio: median over the rounds of the rate against the round's baseline, the median of its "
                  "(a), (b) and (b'); (a) has no table at all, so it is never an easier baseline than (b).\n\n",
                  clients, dur, rounds));
  out("| configuration | connections/s (median) | range | vs baseline |\n| --- | ---: | ---: | ---: |\n");
  for (const auto& c : cfgs) {
    auto [lo, hi] = std::minmax_element(c.rates.begin(), c.rates.end());
    out(fmt::format("| {} | {:.0f} | {:.0f}–{:.0f} | {:.2f} |\n", c.name, median(c), *lo, *hi, ratio(c)));
  }
  auto tw_big = by_name(fmt::format("(c) topowall enforcing, {} edges", edge_sizes.back()));
  if (tw_big)
    out(fmt::format("\nTarget (c) ≥ 0.95 × (b) at {} edges: **{:.2f}** ({})\n", edge_sizes.back(), ratio(*tw_big),
                    ratio(*tw_big) >= 0.95 ? "met" : "missed"));
  std::size_t cmp = o.smoke ? 1000 : 10000;
  auto tw_c = by_name(fmt::format("(c) topowall enforcing, {} edges", cmp));
  auto nv = by_name(fmt::format("(d) naive: one nft rule per edge, {} rules", cmp));
  auto nv_pair = by_name("(d') naive");
  if (tw_c && nv && median(*nv) > 0)
    out(fmt::format("Target (c) ≥ 5 × (d) at {} edges: **{:.2f}** ({}); against (d'), the address-pair table: {:.2f}\n", cmp,
                    median(*tw_c) / median(*nv), median(*tw_c) / median(*nv) >= 5 ? "met" : "missed",
                    nv_pair && median(*nv_pair) > 0 ? median(*tw_c) / median(*nv_pair) : 0));
  out("\nThe per-packet path of (c) does not depend on the number of edges (hash lookups): differences between its "
      "three rows are this machine's noise, as is the gap between (a), (b) and (b'). The naive tables "
      "list the lab's edge last (a new connection walks every rule, as an unmatched one would). (d) names each "
      "edge's workloads by their addresses (10 replicas each), as selector-based policy engines do; (d') matches "
      "one address pair per rule, cheaper than any real edge allows, shown for reference.\n");
  if (!o.smoke) {
    (void)nft_file(ct_table);
    double bulk_ct = iperf(lab, 3);
    sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct");
    checked(w.apply(models[edge_sizes.back()]), "apply (bulk TCP)");
    double bulk_tw = iperf(lab, 3);
    checked(w.remove(), "remove the table");
    out(fmt::format("\nBulk TCP (iperf3, 3 s): (b) {:.2f} Gbit/s, (c) at 100k edges {:.2f} Gbit/s, ratio {:.2f}\n", bulk_ct,
                    bulk_tw, bulk_ct > 0 ? bulk_tw / bulk_ct : 0));
  }
}

// Not part of the report: hold one datapath configuration under load for a
// profiler (`perf record -a` around `--only hold --hold tw|ct|naive`).
void hold(const Options& o) {
  Lab lab("twb", "10.232.0", {"a", "b"});
  if (!lab.ok()) return;
  Server server(lab.ns_path("b"), 8080);
  nft::NftWriter w;
  checked(w.open(), "open the nftables socket");
  sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct 2>/dev/null; nft delete table bridge twb_naive 2>/dev/null; nft delete table inet twb_naive 2>/dev/null; nft delete table bridge twb_tw 2>/dev/null; nft delete table inet twb_tw 2>/dev/null");
  if (o.hold == "tw")
    checked(w.apply(synthetic("twb_tw", 10000, 100000, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"))),
            "apply");
  if (o.hold == "ct")
    (void)nft_file("table inet twb_ct {\n chain forward {\n  type filter hook forward priority -5; policy accept;\n"
                   "  ct state established,related accept\n }\n}\n");
  if (o.hold == "naive") (void)nft_file(naive_ruleset("twb_naive", 10000, lab.ip("a"), lab.ip("b"), 8080, "10.232.0.0/24"));
  auto r = connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, 10, std::max(2u, std::thread::hardware_concurrency()));
  fmt::print("{}: {:.0f} connections/s\n", o.hold, r.rate());
  checked(w.remove(), "remove the table");
  sh("nft delete table bridge twb_ct 2>/dev/null; nft delete table inet twb_ct 2>/dev/null; nft delete table bridge twb_naive 2>/dev/null; nft delete table inet twb_naive 2>/dev/null");
}

void programming(const Options& o) {
  out("\n## 2. Rule programming\n\n");
  const std::size_t endpoints = o.smoke ? 1000 : 10000, edges = o.smoke ? 5000 : 100000;
  auto m = synthetic("twb_prog", endpoints, edges, "10.233.0.2", "10.233.0.3", 8080);
  sh("nft delete table bridge twb_prog 2>/dev/null; nft delete table inet twb_prog 2>/dev/null; nft delete table bridge twb_progx 2>/dev/null; nft delete table inet twb_progx 2>/dev/null");
  // Full apply in a child process, so its peak RSS is the apply's own.
  int pipefd[2];
  if (pipe(pipefd) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    nft::NftWriter w;
    checked(w.open(), "open the nftables socket");
    auto t0 = Clk::now();
    auto r = w.apply(m);
    double t = secs(Clk::now() - t0);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto s = fmt::format("{} {} {}", r ? 1 : 0, t, ru.ru_maxrss);
    (void)!write(pipefd[1], s.data(), s.size());
    _exit(0);
  }
  close(pipefd[1]);
  char buf[128] = {};
  (void)!read(pipefd[0], buf, sizeof buf - 1);
  close(pipefd[0]);
  waitpid(pid, nullptr, 0);
  int okv = 0;
  double ours = 0;
  long rss = 0;
  std::sscanf(buf, "%d %lf %ld", &okv, &ours, &rss);
  auto twin = m;
  twin.cfg.table = "twb_progx";
  double theirs = 0;
  rusage nft_ru{};
  bool nft_ok = nft_file(topology::render_nft(twin), &theirs, &nft_ru);
  out(fmt::format("Full apply of {} endpoints and {} edges (one transaction):\n\n", endpoints, edges));
  out("| writer | wall time | peak RSS |\n| --- | ---: | ---: |\n");
  out(fmt::format("| topowall (libnftnl batch) | {:.3f} s | {:.1f} MiB |\n", ours, rss / 1024.0));
  out(fmt::format("| baseline: `nft -f` of the same ruleset as text | {:.3f} s | {:.1f} MiB |\n", theirs, nft_ru.ru_maxrss / 1024.0));
  out(fmt::format("\nTarget ≤ 0.5 × nft: **{:.2f}** ({}){}\n", theirs > 0 ? ours / theirs : 0,
                  theirs > 0 && ours / theirs <= 0.5 ? "met" : "missed", okv && nft_ok ? "" : " (an apply FAILED)"));
  sh("nft delete table bridge twb_progx 2>/dev/null; nft delete table inet twb_progx");

  // Incremental: the agent's patch path (model patch + element diff + commit).
  out("\nIncremental changes (the agent's patch path, one transaction each):\n\n");
  out("| change | edges | p50 | p99 |\n| --- | ---: | ---: | ---: |\n");
  for (std::size_t n : o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 100000}) {
    sh("nft delete table bridge twb_prog 2>/dev/null; nft delete table inet twb_prog");
    nft::NftWriter w;
    checked(w.open(), "open the nftables socket");
    auto model = synthetic("twb_prog", endpoints, n, "10.233.0.2", "10.233.0.3", 8080);
    checked(w.apply(model), "apply");
    const int iters = o.smoke ? 20 : 300;
    std::vector<double> edge_ms, ep_ms, wl_ms;
    for (int i = 0; i < iters; ++i) {
      topology::AllowKey k{16 + static_cast<std::uint32_t>(i % 50), 17, 6, static_cast<std::uint16_t>(60001 + i % 4000)};
      auto t0 = Clk::now();
      model.allow.insert(k);
      checked(w.apply_patch(model, {}, {k}), "apply a patch");
      edge_ms.push_back(secs(Clk::now() - t0) * 1000);
      model.allow.erase(k);
      checked(w.apply_patch(model, {}, {k}), "apply a patch");
      auto a = IpAddr::v4(0x0ae90000 + static_cast<std::uint32_t>(i));
      t0 = Clk::now();
      model.ep4[a] = 16 + static_cast<std::uint32_t>(i % 100);
      checked(w.apply_patch(model, {a}, {}), "apply a patch");
      ep_ms.push_back(secs(Clk::now() - t0) * 1000);
      model.ep4.erase(a);
      checked(w.apply_patch(model, {a}, {}), "apply a patch");
      // A workload's first endpoint: its sets, chains and dispatch entries
      // (the one change that adds jump verdicts, so the kernel re-validates).
      const std::uint32_t id = 100000 + static_cast<std::uint32_t>(i);
      t0 = Clk::now();
      model.ids.insert(id);
      model.ep4[a] = id;
      checked(w.apply_patch(model, {a}, {}), "apply a patch");
      wl_ms.push_back(secs(Clk::now() - t0) * 1000);
      model.ep4.erase(a);
      checked(w.apply_patch(model, {a}, {}), "apply a patch");
    }
    out(fmt::format("| one approved edge | {} | {:.3f} ms | {:.3f} ms |\n", n, percentile(edge_ms, 0.5), percentile(edge_ms, 0.99)));
    out(fmt::format("| one new endpoint | {} | {:.3f} ms | {:.3f} ms |\n", n, percentile(ep_ms, 0.5), percentile(ep_ms, 0.99)));
    out(fmt::format("| one new workload (its first endpoint) | {} | {:.3f} ms | {:.3f} ms |\n", n, percentile(wl_ms, 0.5),
                    percentile(wl_ms, 0.99)));
    checked(w.remove(), "remove the table");
  }
  out("\nTarget: p99 ≤ 2 ms, flat in size. Endpoints reach the kernel as data-map elements (address -> id), so\n"
      "adding one costs the same at any size; a new workload adds jump verdicts (id -> its chains), which makes\n"
      "the kernel re-validate the dispatch maps: that cost grows with the number of workloads (1000 here).\n");
}

// --- the agent as users run it ----------------------------------------------------

struct Agent {
  pid_t pid = 0;
  std::string dir, sock;
  ~Agent() { stop(); }
  bool start(const Options& o, const std::vector<std::string>& extra) {
    dir = "/tmp/topowall-bench-agent";
    sh("rm -rf " + dir);
    mkdir(dir.c_str(), 0700);
    sock = dir + "/sock";
    std::vector<std::string> args = {o.agent, "--state-dir", dir + "/state", "--socket", sock, "--table", "twb_agent",
                                     "--nflog-group", "5401", "--netns-prefix", "twb-", "--discover-netns", "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, (dir + "/log").c_str(), O_WRONLY | O_CREAT, 0600);
    if (posix_spawn(&pid, o.agent.c_str(), &fa, nullptr, argv.data(), environ) != 0) return false;
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 100; ++i) {
      auto s = status(o);
      if (s.value("ruleset_applied", false)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  json status(const Options& o) {
    auto j = json::parse(sh_out(o.cli + " --socket " + sock + " status -o json 2>/dev/null"), nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  double cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    auto p = s.rfind(')');
    std::istringstream rest(s.substr(p + 2));
    std::string f;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15; ++i) {
      rest >> f;
      if (i == 14) utime = std::stol(f);
      if (i == 15) stime = std::stol(f);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
  }
  void stop() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
      pid = 0;
      sh("nft delete table bridge twb_agent 2>/dev/null; nft delete table inet twb_agent");
    }
  }
};

// The kernel's own conntrack losses (insert_failed + drop + early_drop, all CPUs).
long kernel_ct_losses() {
  std::ifstream in("/proc/net/stat/nf_conntrack");
  std::string line;
  std::getline(in, line);  // header
  long total = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> col;
    for (std::string x; f >> x;) col.push_back(x);
    for (std::size_t i : {9, 10, 11})  // insert_failed, drop, early_drop
      if (i < col.size()) total += std::stol(col[i], nullptr, 16);
  }
  return total;
}

void learning(const Options& o) {
  out("\n## 3. Learning: new connections the agent sees without loss\n\n");
  Lab lab("twb", "10.232.1", {"a", "b"});
  Server server(lab.ns_path("b"), 8080);
  Agent agent;
  if (!agent.start(o, {"--mode", "learn"})) {
    out("agent did not start\n");
    return;
  }
  out("| offered rate | generated | agent saw | lost | ENOBUFS | kernel conntrack drops | agent CPU per 10k events |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  double best = 0;
  const unsigned clients = std::max(2u, std::thread::hardware_concurrency());
  // The last rate is 0: every client as fast as it can (the generator's limit).
  for (double rate : o.smoke ? std::vector<double>{1000} : std::vector<double>{2000, 5000, 10000, 20000, 0}) {
    auto before = agent.status(o)["counters"];
    double cpu0 = agent.cpu_seconds();
    long k0 = kernel_ct_losses();
    const double dur = o.smoke ? 0.5 : 2.0;
    auto r = rate > 0 ? connect_loop(lab.ns_path("a"), lab.ip("b"), 8080, dur, rate)
                      : connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, dur, clients);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto after = agent.status(o)["counters"];
    double cpu = agent.cpu_seconds() - cpu0;
    auto seen = after.value("conntrack_flows", 0) - before.value("conntrack_flows", 0);
    auto enobufs = after.value("conntrack_enobufs", 0) - before.value("conntrack_enobufs", 0);
    long lost = static_cast<long>(r.ok) - static_cast<long>(seen);
    long kdrops = kernel_ct_losses() - k0;
    if (lost <= 0 && enobufs == 0 && kdrops == 0) best = std::max(best, r.rate());
    out(fmt::format("| {} (achieved {:.0f}/s) | {} | {} | {} | {} | {} | {:.3f} s |\n",
                    rate > 0 ? fmt::format("{:.0f}/s", rate) : fmt::format("unpaced, {} clients", clients), r.rate(), r.ok,
                    seen, std::max(0L, lost), enobufs, kdrops, seen ? cpu / static_cast<double>(seen) * 10000 : 0));
  }
  out(fmt::format("\nHighest sustained rate with no event lost: **{:.0f} connections/s** (the generator's own count against "
                  "the agent's, the kernel's ENOBUFS on the agent's socket and conntrack's own drop counters).\n",
                  best));
  out(fmt::format("Agent RSS after learning: {:.1f} MiB\n", agent.rss_kib() / 1024.0));
}

void container_start(const Options& o) {
  out("\n## 4. Container start (runtime event) to its endpoint enforced\n\n");
  const char* rs = getenv("TOPOWALL_RUNTIME_SOCKET");
  std::string runtime = rs ? rs : "/run/topowall-lab/podman.sock";
  if (sh("command -v podman") != 0 || sh("test -S " + runtime) != 0) {
    out("skipped: no podman API service (tools/test.sh or tools/lab/podman-env.sh starts one)\n");
    return;
  }
  const std::string net = "topowall-bench", image = "localhost/topowall-busybox:1";
  sh("podman rm -f -t 0 $(podman ps -aq --filter label=topowall-bench=1)");
  sh("podman network rm -f " + net);
  sh("podman network create --disable-dns --subnet 10.89.79.0/24 " + net);
  Agent agent;
  if (!agent.start(o, {"--mode", "enforce", "--runtime-socket", runtime, "--no-discover-netns"})) {
    out("agent did not start\n");
    return;
  }
  nft::NftWriter probe;
  checked(probe.open(), "open the nftables socket");
  std::vector<double> lat;
  const int n = o.smoke ? 3 : 30;
  for (int i = 0; i < n; ++i) {
    auto ip = fmt::format("10.89.79.{}", 10 + i);
    // `podman run -d` returns once the container runs (its start event is out);
    // from there, poll the kernel for the address in the endpoint set.
    if (sh(fmt::format("podman run -d --name topowall-bench-{} --label topowall-bench=1 --label app=bench --network {} --ip {} {} sleep 600",
                       i, net, ip, image)) != 0)
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
  auto inner = agent.status(o).value("event_to_enforced_ms", json::object());
  agent.stop();
  sh("podman rm -f -t 0 $(podman ps -aq --filter label=topowall-bench=1)");
  sh("podman network rm -f " + net);
  out(fmt::format("{} containers started; enforced (address in the kernel's endpoint set) for {}.\n\n", n, lat.size()));
  out("| measured from | p50 | p99 |\n| --- | ---: | ---: |\n");
  out(fmt::format("| `podman run -d` returned (includes podman's event delivery) | {:.1f} ms | {:.1f} ms |\n",
                  percentile(lat, 0.5), percentile(lat, 0.99)));
  out(fmt::format("| the runtime event reached the agent (agent's own histogram, {} samples) | {:.1f} ms | {:.1f} ms |\n",
                  inner.value("samples", 0), inner.value("p50", 0.0), inner.value("p99", 0.0)));
  out("\nThe first row ends when the address is in the kernel's `eps4` (polled); the second is the agent's: event "
      "received, container inspected through the API, endpoint programmed. The difference is podman's event pipeline.\n");
}

void alerts(const Options& o) {
  out("\n## 5. Alerts: blocked SYN to alert and pending entry\n\n");
  Lab lab("twb", "10.232.2", {"a", "b"});
  Server server(lab.ns_path("b"), 8080);
  Agent agent;
  if (!agent.start(o, {"--mode", "enforce", "--alert-sink", "jsonl:/dev/null"})) {
    out("agent did not start\n");
    return;
  }
  // A watch connection: the agent publishes each logged packet as it handles it,
  // in the same step that records the pending entry.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, agent.sock.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return;
  std::string req = "{\"v\":1,\"method\":\"flows.watch\"}\n";
  (void)!write(fd, req.data(), req.size());
  std::string buf;
  auto read_line = [&](int timeout_ms) -> std::string {
    for (;;) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        auto l = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return l;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return "";
      char chunk[8192];
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) return "";
      buf.append(chunk, static_cast<std::size_t>(n));
    }
  };
  read_line(1000);  // {"watching": true}
  std::vector<double> lat;
  const int n = o.smoke ? 20 : 300;
  checked(rtnl::run_in_netns(lab.ns_path("a"), [&]() -> Status {
    for (int i = 0; i < n; ++i) {
      int port = 20000 + i;
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      sockaddr_in dst{};
      dst.sin_family = AF_INET;
      dst.sin_port = htons(static_cast<std::uint16_t>(port));
      inet_pton(AF_INET, lab.ip("b").c_str(), &dst.sin_addr);
      auto t0 = Clk::now();
      (void)connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      for (;;) {
        auto line = read_line(1000);
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
  ::close(fd);
  out(fmt::format("{} blocked SYNs, each to a new port: alert received for {}.\n\n", n, lat.size()));
  out(fmt::format("| p50 | p99 | target p99 |\n| ---: | ---: | ---: |\n| {:.2f} ms | {:.2f} ms | ≤ 20 ms ({}) |\n",
                  percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.99) <= 20 ? "met" : "missed"));

  // Flood: blocked SYNs as fast as one core sends them.
  auto before = agent.status(o)["counters"];
  double cpu0 = agent.cpu_seconds();
  auto t0 = Clk::now();
  std::uint64_t sent = 0;
  const double dur = o.smoke ? 0.5 : 3.0;
  checked(rtnl::run_in_netns(lab.ns_path("a"), [&]() -> Status {
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    inet_pton(AF_INET, lab.ip("b").c_str(), &dst.sin_addr);
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

// In a fresh process (exec'd, so nothing of the parent's heap is reused):
// build what the agent holds for this size and print the RSS growth in KiB.
int memory_child(std::size_t eps, std::size_t edges) {
  auto rss = [] {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0L;
  };
  long base = rss();
  // Endpoints, the graph, the compiled model and the applied layout.
  auto* table = new topology::EndpointTable;
  auto* graph = new topology::Graph;
  topology::IdTable ids;
  for (std::size_t i = 0; i < eps; ++i) {
    EndpointInfo e;
    e.id = fmt::format("{:064x}", i);
    e.name = fmt::format("c{}", i);
    e.addresses.push_back(IpAddr::v4(0x0ac80000 + static_cast<std::uint32_t>(i)));
    table->upsert(fmt::format("w{}", i % 1000), e);
  }
  auto now = Clock::now();
  std::mt19937 rng(1);
  while (graph->edges().size() < edges)
    graph->observe({fmt::format("w{}", rng() % 1000), fmt::format("w{}", rng() % 1000), Proto::tcp,
                    static_cast<std::uint16_t>(1 + rng() % 65000)},
                   now);
  topology::ModeTable modes;
  auto* model = new topology::RulesetModel(topology::compile({*graph, *table, modes, now}, ids, {}));
  auto* l = new nft::Layout(nft::layout(*model));
  fmt::print("{}\n", rss() - base);
  (void)l;
  return 0;
}

void memory(const Options& o) {
  out("\n## 6. Memory: what the agent holds against endpoints and edges\n\n");
  out("Endpoints, the graph, the compiled model and the applied kernel layout, built in a fresh process.\n\n");
  out("| endpoints | edges | RSS growth | bytes per (endpoint + edge) |\n| ---: | ---: | ---: | ---: |\n");
  for (auto [eps, edges] : o.smoke ? std::vector<std::pair<std::size_t, std::size_t>>{{1000, 1000}}
                                   : std::vector<std::pair<std::size_t, std::size_t>>{
                                         {1000, 1000}, {10000, 10000}, {10000, 100000}, {10000, 200000}}) {
    auto text = sh_out(fmt::format("/proc/{}/exe --mem-child {} {} --agent x --cli x", getpid(), eps, edges));
    long kib = std::atol(text.c_str());
    out(fmt::format("| {} | {} | {:.1f} MiB | {:.0f} |\n", eps, edges, kib / 1024.0,
                    static_cast<double>(kib) * 1024 / static_cast<double>(edges + eps)));
  }
  out(fmt::format("\nThe agent process itself, idle after the learning run above, had an RSS of about 9 MiB.\n"));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"topowall benchmark suite"};
  Options o;
  std::string report;
  app.add_flag("--smoke", o.smoke, "tiny sizes and durations: checks the suite works, not speed");
  app.add_option("--report", report, "also write the report (markdown) here");
  app.add_option("--agent", o.agent, "topowalld binary")->required();
  app.add_option("--cli", o.cli, "topowall binary")->required();
  app.add_option("--only", o.only, "datapath, programming, learning, containers, alerts or memory (or hold)");
  app.add_option("--hold", o.hold, "with --only hold: tw, ct or naive under 10 s of load, for a profiler");
  std::vector<std::size_t> mem_child;
  app.add_option("--mem-child", mem_child, "internal: ENDPOINTS EDGES")->expected(2);
  CLI11_PARSE(app, argc, argv);
  if (mem_child.size() == 2) return memory_child(mem_child[0], mem_child[1]);
  setenv("CONTAINERS_CONF", TOPOWALL_SOURCE_DIR "/deploy/podman/containers.conf", 0);
  if (geteuid() != 0) {
    fmt::print(stderr, "topowall-bench needs root (namespaces, nftables, conntrack)\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  out(fmt::format("# topowall benchmarks\n\n{} run on {} cores; every ratio compares with a baseline measured in the same run.\n",
                  o.smoke ? "Smoke" : "Full", std::thread::hardware_concurrency()));
  if (o.only == "hold") {
    hold(o);
    return 0;
  }
  auto want = [&](const char* s) { return o.only.empty() || o.only == s; };
  if (want("datapath")) datapath(o);
  if (want("programming")) programming(o);
  if (want("learning")) learning(o);
  if (want("containers")) container_start(o);
  if (want("alerts")) alerts(o);
  if (want("memory")) memory(o);
  if (!report.empty()) std::ofstream(report) << g_report;
  return 0;
}
