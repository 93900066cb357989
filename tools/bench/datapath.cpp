// Section 1: new TCP connections per second through the node, topowall's
// table against conntrack alone and against naive rule-per-edge tables.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "common.hpp"
#include "nft/writer.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

// One configuration of the datapath: load it, measure, unload.
struct Config {
  std::string name;
  std::function<bool()> load;
  std::function<void()> unload;
  std::vector<double> rates;
};

void drop_datapath_tables() {
  for (const char* t : {"twb_ct", "twb_naive", "twb_tw"}) drop_tables(t);
}

Config ct_config(std::string name) {
  return {std::move(name), [] { return nft_file(kCtTable); }, [] { drop_tables("twb_ct"); }, {}};
}

// What the configurations load: kept by the caller while they run.
struct Tables {
  Lab& lab;
  nft::NftWriter& w;
  std::map<std::size_t, topology::RulesetModel> models;
  std::vector<std::size_t> edge_sizes, rule_sizes;
  std::size_t endpoints;
};

// The real agent beside the lab, as users run it: topowalld discovering the lab's namespaces, enforcing a graph
// imported through the CLI, alerts on (its NFLOG group). Started once. Between its rows it is stopped (SIGSTOP)
// and its table dropped, so every other row runs without it; a SIGCONT lets it restore the table (it repairs
// what others delete).
struct RealAgent {
  Agent agent;
  Lab* lab = nullptr;
  std::size_t edges = 0, workloads = 0;
  bool ok = false;

  bool passes() const {
    for (int i = 0; i < 100; ++i) {
      if (sh("nft list table inet twb_agent >/dev/null 2>&1") == 0 && tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080, 300))
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  bool resume() {
    kill(agent.pid, SIGCONT);
    return passes();
  }
  void suspend_and_drop() {
    kill(agent.pid, SIGSTOP);
    drop_tables("twb_agent");
  }
  ~RealAgent() {
    if (agent.pid > 0) kill(agent.pid, SIGCONT);  // a stopped process would not see SIGTERM
  }
};

// `edges` distinct edges among `workloads` workloads, the lab's a -> b tcp/8080 among them.
std::string agent_graph(const Lab& lab, std::size_t edges, std::size_t workloads, const std::string& path) {
  topology::Graph g;
  std::mt19937 rng(11);
  const auto now = Clock::now();
  std::vector<std::string> names{lab.ns("a"), lab.ns("b")};
  for (std::size_t w = names.size(); w < workloads; ++w) names.push_back(fmt::format("w{}", w));
  for (const auto& n : names) g.note_workload(n, {{"app", n}}, now);
  g.observe({lab.ns("a"), lab.ns("b"), Proto::tcp, 8080}, now);
  while (g.edges().size() < edges)
    g.observe({names[rng() % names.size()], names[rng() % names.size()], Proto::tcp,
               static_cast<std::uint16_t>(1 + rng() % 65000)},
              now);
  std::ofstream(path) << topology::graph_to_json(g).dump() << "\n";
  return path;
}

bool start_real_agent(const Options& o, RealAgent& ra) {
  if (o.agent.empty() || o.cli.empty()) return false;
  if (!ra.agent.start(o, {"--mode", "enforce"})) return false;
  const auto file = agent_graph(*ra.lab, ra.edges, ra.workloads, ra.agent.dir + "/graph.json");
  if (run_cmd({o.cli, "--socket", ra.agent.sock, "topology", "import", file}) != 0) {
    out("WARNING: the real agent's graph import failed\n");
    return false;
  }
  ra.ok = ra.passes();
  if (!ra.ok) out("WARNING: the real agent never let the lab's edge pass\n");
  ra.suspend_and_drop();
  return ra.ok;
}

void add_agent_configs(std::vector<Config>& cfgs, RealAgent& ra) {
  if (!ra.ok) return;
  cfgs.push_back({fmt::format("(e) topowalld enforcing an imported graph, {} edges, {} workloads, alerts on", ra.edges,
                              ra.workloads),
                  [&ra] { return ra.resume(); }, [&ra] { ra.suspend_and_drop(); }, {}});
  cfgs.push_back({"(e') the same, the agent stopped (SIGSTOP) while its table stays",
                  [&ra] {
                    bool ok = ra.resume();
                    kill(ra.agent.pid, SIGSTOP);
                    return ok;
                  },
                  [] { drop_tables("twb_agent"); }, {}});
}

std::vector<Config> configs(Tables& t) {
  std::vector<Config> cfgs;
  Lab& lab = t.lab;
  cfgs.push_back({"(a) no table of ours", [] { return true; }, [] {}, {}});
  cfgs.push_back(ct_config("(b) conntrack only (ct state established,related accept)"));
  for (std::size_t edges : t.edge_sizes) {
    t.models[edges] = synthetic("twb_tw", t.endpoints, edges, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"));
    cfgs.push_back({fmt::format("(c) topowall enforcing, {} edges, {} endpoints", edges, t.endpoints),
                    [&t, edges] { return static_cast<bool>(t.w.apply(t.models[edges])); },
                    [&t] { checked(t.w.remove(), "remove the table"); }, {}});
  }
  // (b) again right after the (c)s: each round's ratio uses the (b)s around it.
  cfgs.push_back(ct_config("(b') conntrack only again, after the (c) runs of the round"));
  auto naive = [&lab](std::size_t rules, bool sets) {
    return [&lab, rules, sets] {
      return nft_file(naive_ruleset("twb_naive", rules, lab.ip("a"), lab.ip("b"), 8080, "10.232.0.0/24", sets));
    };
  };
  auto drop_naive = [] { drop_tables("twb_naive"); };
  for (std::size_t rules : t.rule_sizes)
    cfgs.push_back({fmt::format("(d) naive: one nft rule per edge, {} rules", rules), naive(rules, true), drop_naive, {}});
  cfgs.push_back({fmt::format("(d') naive, one address pair per rule, {} rules", t.rule_sizes.back()),
                  naive(t.rule_sizes.back(), false), drop_naive, {}});
  return cfgs;
}

// Rounds interleave all configurations, so slow drift of this machine hits every configuration alike.
void measure(Lab& lab, std::vector<Config>& cfgs, int rounds, double dur, unsigned clients, bool smoke) {
  // The kernel finishes a big table's load or removal in workers (hash table
  // resizes, deferred frees): settle() lets that end before a measurement. A smoke run's figures mean
  // nothing, so it does not wait.
  auto settle = [smoke] { std::this_thread::sleep_for(std::chrono::milliseconds(smoke ? 50 : 1500)); };
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cfgs) {
      if (!c.load()) out(fmt::format("WARNING: {} did not load\n", c.name));
      settle();
      if (!connect_loop(lab.ns_path("a"), lab.ip("b"), 8080, 0.05).ok) out(fmt::format("WARNING: {}: the allowed edge did not pass\n", c.name));
      c.rates.push_back(connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, dur, clients).rate());
      c.unload();
      settle();
    }
}

const Config* by_name(const std::vector<Config>& cfgs, const std::string& prefix) {
  for (const auto& c : cfgs)
    if (c.name.rfind(prefix, 0) == 0) return &c;
  return nullptr;
}

double median(const Config& c) { return percentile(c.rates, 0.5); }

// Per round: a configuration against that round's baseline, the median of
// its (a) and two (b)s (one disturbed measurement cannot move it); the
// figure is the median over rounds (slow drift of the machine cancels).
double ratio(const std::vector<Config>& cfgs, const Config& c) {
  const Config& a = *by_name(cfgs, "(a)");
  const Config& b1 = *by_name(cfgs, "(b) conntrack");
  const Config& b2 = *by_name(cfgs, "(b')");
  std::vector<double> v;
  for (std::size_t r = 0; r < c.rates.size(); ++r) {
    double b = percentile({a.rates[r], b1.rates[r], b2.rates[r]}, 0.5);
    if (b > 0) v.push_back(c.rates[r] / b);
  }
  return percentile(v, 0.5);
}

void report_rates(const std::vector<Config>& cfgs, unsigned clients, double dur, int rounds) {
  out(fmt::format("{} clients in parallel, {} s per measurement, {} interleaved rounds. Rates: median and range over "
                  "the rounds. Ratio: median over the rounds of the rate against the round's baseline, the median of its "
                  "(a), (b) and (b'); (a) has no table at all, so it is never an easier baseline than (b).\n\n",
                  clients, dur, rounds));
  out("| configuration | connections/s (median) | range | vs baseline |\n| --- | ---: | ---: | ---: |\n");
  for (const auto& c : cfgs) {
    auto [lo, hi] = std::minmax_element(c.rates.begin(), c.rates.end());
    out(fmt::format("| {} | {:.0f} | {:.0f}–{:.0f} | {:.2f} |\n", c.name, median(c), *lo, *hi, ratio(cfgs, c)));
  }
}

void report_targets(const Options& o, const std::vector<Config>& cfgs, std::size_t largest) {
  auto tw_big = by_name(cfgs, fmt::format("(c) topowall enforcing, {} edges", largest));
  if (tw_big)
    out(fmt::format("\nTarget (c) ≥ 0.95 × (b) at {} edges: **{:.2f}** ({})\n", largest, ratio(cfgs, *tw_big),
                    ratio(cfgs, *tw_big) >= 0.95 ? "met" : "missed"));
  std::size_t cmp = o.smoke ? 1000 : 10000;
  auto tw_c = by_name(cfgs, fmt::format("(c) topowall enforcing, {} edges", cmp));
  auto nv = by_name(cfgs, fmt::format("(d) naive: one nft rule per edge, {} rules", cmp));
  auto nv_pair = by_name(cfgs, "(d') naive");
  if (tw_c && nv && median(*nv) > 0)
    out(fmt::format("Target (c) ≥ 5 × (d) at {} edges: **{:.2f}** ({}); against (d'), the address-pair table: {:.2f}\n", cmp,
                    median(*tw_c) / median(*nv), median(*tw_c) / median(*nv) >= 5 ? "met" : "missed",
                    nv_pair && median(*nv_pair) > 0 ? median(*tw_c) / median(*nv_pair) : 0));
  out("\nThe per-packet path of (c) does not depend on the number of edges (hash lookups): differences between its "
      "three rows are this machine's noise, as is the gap between (a), (b) and (b'). The naive tables "
      "list the lab's edge last (a new connection walks every rule, as an unmatched one would). (d) names each "
      "edge's workloads by their addresses (10 replicas each), as selector-based policy engines do; (d') matches "
      "one address pair per rule, cheaper than any real edge allows, shown for reference.\n");
}

void report_agent(const Options& o, const std::vector<Config>& cfgs, RealAgent& ra) {
  const auto* e = by_name(cfgs, "(e) ");
  const auto* stopped = by_name(cfgs, "(e')");
  if (!e || !stopped) return;
  ra.resume();
  const auto c = ra.agent.status(o).value("counters", json::object());
  ra.suspend_and_drop();  // the bulk line after this runs without the agent's table (it allows no iperf3 port)
  out(fmt::format("\nTarget (e) ≥ 0.97 × baseline at {} edges, the real agent running: **{:.2f}** ({}); stopped (e'): "
                  "{:.2f}. Conntrack events the agent received over the whole run: {} (event filter failures: {}).\n",
                  ra.edges, ratio(cfgs, *e), ratio(cfgs, *e) >= 0.97 ? "met" : "missed", ratio(cfgs, *stopped),
                  c.value("conntrack_messages", json(-1)).dump(), c.value("conntrack_filter_failed", json(-1)).dump()));
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

void bulk(Tables& t) {
  (void)nft_file(kCtTable);
  double bulk_ct = iperf(t.lab, 3);
  drop_tables("twb_ct");
  checked(t.w.apply(t.models[t.edge_sizes.back()]), "apply (bulk TCP)");
  double bulk_tw = iperf(t.lab, 3);
  checked(t.w.remove(), "remove the table");
  out(fmt::format("\nBulk TCP (iperf3, 3 s): (b) {:.2f} Gbit/s, (c) at 100k edges {:.2f} Gbit/s, ratio {:.2f}\n", bulk_ct,
                  bulk_tw, bulk_ct > 0 ? bulk_tw / bulk_ct : 0));
}

}  // namespace

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
  nft::NftWriter w;
  checked(w.open(), "open the nftables socket");
  Tables t{lab, w, {}, o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000, 100000},
           o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000}, o.smoke ? 1000u : 10000u};
  drop_datapath_tables();
  RealAgent ra;
  ra.lab = &lab;
  ra.edges = t.edge_sizes.back();
  ra.workloads = t.endpoints;
  if (!start_real_agent(o, ra)) out("WARNING: the real agent's rows are missing (needs --agent and --cli)\n");
  auto cfgs = configs(t);
  add_agent_configs(cfgs, ra);
  measure(lab, cfgs, rounds, dur, clients, o.smoke);
  report_rates(cfgs, clients, dur, rounds);
  report_targets(o, cfgs, t.edge_sizes.back());
  report_agent(o, cfgs, ra);
  if (!o.smoke) bulk(t);
}

// Not part of the report: hold one datapath configuration under load for a
// profiler (`perf record -a` around `--only hold --hold tw|ct|naive`).
void hold(const Options& o) {
  Lab lab("twb", "10.232.0", {"a", "b"});
  if (!lab.ok()) return;
  if (o.hold == "parts" || o.hold == "alternatives") return parts(lab, o.hold);
  Server server(lab.ns_path("b"), 8080);
  nft::NftWriter w;
  checked(w.open(), "open the nftables socket");
  drop_datapath_tables();
  if (o.hold == "tw")
    checked(w.apply(synthetic("twb_tw", 10000, 100000, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"))),
            "apply");
  if (o.hold == "ct") (void)nft_file(kCtTable);
  if (o.hold == "naive") (void)nft_file(naive_ruleset("twb_naive", 10000, lab.ip("a"), lab.ip("b"), 8080, "10.232.0.0/24"));
  auto r = connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, 10, std::max(2u, std::thread::hardware_concurrency()));
  fmt::print("{}: {:.0f} connections/s\n", o.hold, r.rate());
  checked(w.remove(), "remove the table");
  for (const char* t : {"twb_ct", "twb_naive"}) drop_tables(t);
}

}  // namespace topowall::bench
