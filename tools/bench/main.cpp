// topowall-bench: the benchmark suite. Every figure is measured next to its
// baseline in the same run and reported as a ratio. Root only; it builds its
// own lab of namespaces (prefix twb) and removes it.
//
//   topowall-bench [--smoke] [--report FILE] [--agent PATH] [--only SECTION]
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common.hpp"

using namespace topowall::bench;

int main(int argc, char** argv) {
  CLI::App app{"topowall benchmark suite"};
  Options o;
  std::string report;
  app.add_flag("--smoke", o.smoke, "tiny sizes and durations: checks the suite works, not speed");
  app.add_option("--report", report, "also write the report (markdown) here");
  app.add_option("--agent", o.agent, "topowalld binary")->required();
  app.add_option("--cli", o.cli, "topowall binary")->required();
  app.add_option("--only", o.only, "datapath, programming, learning, containers, alerts, memory, radar, transfer, cri, journal, storm or cluster (or hold)");
  app.add_option("--hold", o.hold, "with --only hold: tw, ct or naive under 10 s of load, for a profiler; parts: what each part of the table costs; alternatives: what the ruleset alternatives would save (about 6 and 8 min)");
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
  if (want("radar")) radar(o);
  if (want("transfer")) transfer(o);
  if (want("cri")) cri_pods(o);
  if (want("journal")) journal(o);
  if (want("storm")) storm(o);
  if (want("cluster")) cluster_scale(o);
  if (!report.empty()) std::ofstream(report) << report_text();
  return 0;
}
