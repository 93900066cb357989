// Section 7: `topowall topology import` and `export` of large graphs through the real CLI against a running
// agent (the graph passes as a descriptor), with the agent's memory before, during and after.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "common.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

// `edges` distinct edges among 1,000 workloads, as the export writes them (dump(2)).
std::string graph_file(std::size_t edges, const std::string& path) {
  topology::Graph g;
  std::mt19937 rng(7);
  const auto now = Clock::now();
  for (int w = 0; w < 1000; ++w) g.note_workload(fmt::format("w{}", w), {{"app", fmt::format("w{}", w)}}, now);
  while (g.edges().size() < edges)
    g.observe({fmt::format("w{}", rng() % 1000), fmt::format("w{}", rng() % 1000), Proto::tcp,
               static_cast<std::uint16_t>(1 + rng() % 65000)},
              now, 1 + rng() % 100);
  std::ofstream(path) << topology::graph_to_json(g).dump(2) << "\n";
  return path;
}

long status_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return 0;
}

// The peak RSS (VmHWM) starts again from the current RSS (proc(5), clear_refs "5").
void reset_peak(pid_t pid) { std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5\n"; }

// Waits until the agent has saved the imported state (it saves within a second of a change) and its RSS
// stops moving: its steady state holding this graph.
long settle(const Agent& a) {
  long last = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long now = a.rss_kib();
    if (i >= 3 && now == last) break;
    last = now;
  }
  return last;
}

// The same-run baseline: the graph inline in one request line, as the CLI sent it before. Its wall time,
// or the agent's refusal.
std::string inline_import(const std::string& sock, const std::string& file) {
  auto graph = json::parse(std::ifstream(file));
  const std::string line = json{{"v", 1}, {"method", "topology.import"}, {"params", {{"graph", graph}}}}.dump() + "\n";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return "cannot connect";
  const auto t0 = Clk::now();
  for (std::size_t off = 0; off < line.size();) {
    auto n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // refused and closed: its answer is still readable
    off += static_cast<std::size_t>(n);
  }
  std::string answer;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') answer += c;
  const double t = secs(Clk::now() - t0);
  ::close(fd);
  auto j = json::parse(answer, nullptr, false);
  if (!j.is_discarded() && j.value("ok", false)) return fmt::format("{:.2f} s", t);
  return j.is_discarded() ? "no answer" : "refused: `" + j["error"].value("code", "?") + "`";
}

std::string mib(long kib) { return fmt::format("{:.1f} MiB", static_cast<double>(kib) / 1024.0); }

}  // namespace

void transfer(const Options& o) {
  out("\n## 7. Graph transfer: `topology import` and `export` through the CLI\n\n");
  out("The real CLI against a running agent (its own state directory, monitor mode, no endpoints). The\n"
      "graph file passes to the agent as a descriptor and is parsed a workload and an edge at a time; the\n"
      "export is written into a pipe the CLI passes (docs/PROTOCOL.md, Large graphs). RSS before is the\n"
      "agent's steady state holding the previous (smaller) graph; after, holding this one, once saved and\n"
      "settled; the peaks are VmHWM reset just before each command. Times are the CLI's wall time, from\n"
      "its start to its exit, with the agent's CPU time for the request in brackets; the state file is\n"
      "saved (fsync) before the import is answered. The baseline is the same file sent inline in one request\n"
      "line, as the CLI did before, to the same agent just after.\n\n");
  Agent agent;
  if (!agent.start(o, {"--mode", "monitor"})) return;
  out("| edges | file | before: inline request | import (agent CPU) | export (agent CPU) | RSS before | peak during import | RSS after (steady) | peak during export "
      "| import peak / steady |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  const auto sizes = o.smoke ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1000, 10000, 100000};
  for (auto edges : sizes) {
    const auto file = graph_file(edges, fmt::format("{}/graph-{}.json", agent.dir, edges));
    const auto bytes = std::filesystem::file_size(file);
    const long before = settle(agent);
    reset_peak(agent.pid);
    double t_import = 0, t_export = 0;
    const double cpu0 = agent.cpu_seconds();
    int rc = run_cmd({o.cli, "--socket", agent.sock, "topology", "import", file}, nullptr, &t_import);
    const long peak_import = status_kib(agent.pid, "VmHWM:");
    const double cpu_import = agent.cpu_seconds() - cpu0;
    if (rc != 0) {
      out(fmt::format("\nimport of {} edges FAILED (exit {})\n", edges, rc));
      return;
    }
    const long steady = settle(agent);
    reset_peak(agent.pid);
    const double cpu1 = agent.cpu_seconds();
    const auto exported = agent.dir + "/exported.json";
    rc = run_cmd({"sh", "-c", o.cli + " --socket " + agent.sock + " topology export > " + exported}, nullptr, &t_export);
    const long peak_export = status_kib(agent.pid, "VmHWM:");
    const double cpu_export = agent.cpu_seconds() - cpu1;
    auto back = json::parse(std::ifstream(exported), nullptr, false);
    if (rc != 0 || back.is_discarded() || back["edges"].size() != edges) {
      out(fmt::format("\nexport of {} edges FAILED (exit {}, {} edges read back)\n", edges, rc,
                      back.is_discarded() ? 0 : back["edges"].size()));
      return;
    }
    const auto baseline = inline_import(agent.sock, file);
    out(fmt::format("| {} | {:.1f} MB | {} | {:.2f} s ({:.2f} s) | {:.2f} s ({:.2f} s) | {} | {} | {} | {} | {:.2f} |\n", edges,
                    static_cast<double>(bytes) / 1e6, baseline, t_import, cpu_import, t_export, cpu_export, mib(before), mib(peak_import),
                    mib(steady), mib(peak_export),
                    static_cast<double>(peak_import) / static_cast<double>(steady)));
  }
}

}  // namespace topowall::bench
