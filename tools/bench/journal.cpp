// Section 10: the flow journal's cost per flow on the agent's flow path, and `replay` of a day of flows at
// 1,000 flows/s, each against a baseline measured in the same run.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "agent/flow_journal.hpp"
#include "common.hpp"
#include "topowall/topology/journal.hpp"
#include "topowall/topology/replay.hpp"
#include "topowall/topology/usage.hpp"

namespace topowall::bench {

namespace {

constexpr std::size_t kEdges = 200;  // edges among 50 workloads carrying the flows

std::vector<topology::EdgeKey> edge_set() {
  std::vector<topology::EdgeKey> out;
  for (std::size_t i = 0; i < kEdges; ++i)
    out.push_back({fmt::format("w{}", i % 50), fmt::format("w{}", (i * 7 + 1) % 50), Proto::tcp,
                   static_cast<std::uint16_t>(8000 + i)});
  return out;
}

// Reads the files whole, doing nothing with the bytes: the floor for any replay.
double raw_read(const std::string& path) {
  const auto t0 = Clk::now();
  char buf[1 << 16];
  for (const auto& f : {path + ".old", path}) {
    int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    ::close(fd);
  }
  return secs(Clk::now() - t0);
}

// Per flow: the graph's own per-flow work (a known edge's sighting: the baseline), then that plus the
// journal (edge use stamped, counted in its minute, closed minutes appended to the file).
void write_cost(const Options& o, const std::string& dir) {
  const auto edges = edge_set();
  const std::size_t flows = o.smoke ? 60'000 : 3'600'000;  // an hour at 1,000 flows/s
  const auto t0 = Clock::now();
  auto at = [&](std::size_t i) { return t0 + std::chrono::milliseconds(i); };  // 1,000 flows/s
  topology::Graph g;
  for (const auto& k : edges) g.observe(k, t0);
  auto start = Clk::now();
  for (std::size_t i = 0; i < flows; ++i) g.observe(edges[i % kEdges], at(i));
  const double base = secs(Clk::now() - start);

  agent::FlowJournal j(dir + "/write.journal", 64 << 20);
  if (!checked(j.open(), "opening the journal")) return;
  topology::FlowBuckets b;
  start = Clk::now();
  for (std::size_t i = 0; i < flows; ++i) {
    const auto& k = edges[i % kEdges];
    g.observe(k, at(i));
    (void)topology::note_used(g, k, at(i));
    b.add(k, topology::FlowVerdict::allowed, at(i));
    if (i % 100 == 0)  // the agent's tick (every 100 ms)
      if (auto rs = b.take(at(i)); !rs.empty() && !checked(j.append(rs), "appending")) return;
  }
  if (!checked(j.append(b.take(at(flows), true)), "appending")) return;
  const double with = secs(Clk::now() - start);
  out(fmt::format("| {} flows, {} edges | {:.0f} ns | {:.0f} ns | {:.0f} ns | {:.2f}x | {} records, {:.1f} KiB |\n", flows,
                  kEdges, base / flows * 1e9, with / flows * 1e9, (with - base) / flows * 1e9, with / base,
                  j.counters().records, j.bytes() / 1024.0));
}

// A day at 1,000 flows/s over the edge set, as the journal holds it (one record per edge and minute,
// a tenth of the edges blocked), replayed against a graph missing 10 of the edges.
void replay_cost(const Options& o, const std::string& dir) {
  const auto edges = edge_set();
  const std::uint32_t minutes = o.smoke ? 60 : 24 * 60;
  const auto path = dir + "/day.journal";
  agent::FlowJournal j(path, 256 << 20);
  if (!checked(j.open(), "opening the journal")) return;
  const auto first = topology::minute_of(Clock::now()) - minutes;
  for (std::uint32_t m = 0; m < minutes; ++m) {
    std::vector<topology::JournalRecord> rs;
    for (std::size_t i = 0; i < kEdges; ++i)
      rs.push_back({first + m, edges[i], i % 10 == 0 ? topology::FlowVerdict::blocked : topology::FlowVerdict::allowed,
                    static_cast<std::uint32_t>(60'000 / kEdges)});
    if (!checked(j.append(rs), "writing the day")) return;
  }
  topology::Graph g;
  for (std::size_t i = 10; i < kEdges; ++i) g.observe(edges[i], Clock::now());
  const double floor = raw_read(path);
  auto start = Clk::now();
  std::uint64_t decoded = 0;
  if (!checked(j.read([&](const topology::JournalRecord&) { ++decoded; }), "decoding")) return;
  const double decode = secs(Clk::now() - start);
  start = Clk::now();
  topology::Replay r(g, first);
  if (!checked(j.read([&](const topology::JournalRecord& rec) { r.add(rec); }), "replaying")) return;
  auto res = r.result();
  auto answer = topology::replay_to_json(res, 1000).dump();
  const double replay = secs(Clk::now() - start);
  out(fmt::format("| {} h, {:.1f} M flows | {} records, {:.1f} MiB | {:.3f} s | {:.3f} s | {:.3f} s | {:.1f}x | {} blocked flows on {} edges |\n",
                  minutes / 60, (res.allowed_flows + res.blocked_flows) / 1e6, decoded, j.bytes() / 1048576.0, floor,
                  decode, replay, floor > 0 ? replay / floor : 0, res.blocked_flows, res.blocked.size()));
}

}  // namespace

void journal(const Options& o) {
  out("\n## 10. Flow journal and replay\n\n");
  const auto dir = std::filesystem::temp_directory_path() / ("twb-journal-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  out("| load | per flow: graph only (baseline) | with edge use + journal | journal's own cost | ratio | journal written |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: |\n");
  write_cost(o, dir.string());
  out("\n| replayed | journal | read only (baseline) | decode | replay (decode, judge, answer) | replay / read | result |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
  replay_cost(o, dir.string());
  std::filesystem::remove_all(dir);
}

}  // namespace topowall::bench
