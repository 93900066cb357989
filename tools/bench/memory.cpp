// Section 6: what the agent holds against endpoints and edges, measured in a
// fresh process per size.
#include <unistd.h>

#include <fstream>
#include <random>

#include "common.hpp"
#include "nft/writer.hpp"

namespace topowall::bench {

using namespace topowall::testing;

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

}  // namespace topowall::bench
