// Section 3: new connections the learning agent sees, against what the
// generator made, at rising rates.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "common.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

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

}  // namespace

void learning(const Options& o) {
  out("\n## 3. Learning: new connections the agent sees without loss\n\n");
  AgentLab l("10.232.1");
  [[maybe_unused]] auto& [lab, server, agent] = l;  // the server only listens
  if (!agent.start(o, {"--mode", "learn"})) return;
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

}  // namespace topowall::bench
