// What the benchmark sections share: the report, timing and percentiles, load
// generation, synthetic rulesets, and the agent as users run it.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lab.hpp"
#include "topowall/result.hpp"
#include "topowall/topology/ruleset.hpp"

namespace topowall::bench {

using Clk = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  bool smoke = false;
  std::string agent;
  std::string cli;
  std::string only;
  std::string hold = "tw";
};

// --- the report ------------------------------------------------------------------

// Printed at once and kept for --report.
void out(const std::string& s);
const std::string& report_text();

// A step whose failure spoils the figures: said in the report (its "FAILED" fails the smoke test).
template <typename T>
bool checked(const Result<T>& r, const std::string& what) {
  if (!r) out(fmt::format("\n{} FAILED: {}\n", what, r.error().message));
  return r.ok();
}

double secs(Clk::duration d);
double percentile(std::vector<double> v, double p);

// --- processes and nft ------------------------------------------------------------

// Run a command (stdout to /dev/null), with its resource use and wall time; its exit status.
int run_cmd(const std::vector<std::string>& args, rusage* ru = nullptr, double* wall = nullptr);
// Load a ruleset given as text with `nft -f`.
bool nft_file(const std::string& text, double* wall = nullptr, rusage* ru = nullptr);
// The conntrack-only baseline table, twb_ct.
extern const char* const kCtTable;

// --- load generation ------------------------------------------------------------

// New TCP connections per second from one namespace to a server in another:
// connect, then close with RST (no TIME_WAIT), as fast as possible or paced.
struct ConnResult {
  std::uint64_t ok = 0, failed = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
};

ConnResult connect_loop(const std::string& ns_path, const std::string& ip, int port, double duration, double pace = 0);
// `clients` generators at once (one per core by default): the node's capacity
// for new connections, not one client's round-trip latency.
ConnResult connect_parallel(const std::string& ns_path, const std::string& ip, int port, double duration, unsigned clients);

// --- synthetic rulesets (rulesets.cpp) ----------------------------------------------

topology::RulesetModel synthetic(const std::string& table, std::size_t endpoints, std::size_t edges,
                                 const std::string& client, const std::string& server, int port,
                                 std::uint32_t client_port = 0, std::uint32_t server_port = 0);
std::string naive_ruleset(const std::string& table, std::size_t rules, const std::string& client, const std::string& server,
                          int port, const std::string& lab_net, bool workload_sets = true);

// --- the agent as users run it (agent.cpp) ----------------------------------------------

struct Agent {
  pid_t pid = 0;
  std::string dir, sock;
  ~Agent() { stop(); }
  // Spawn it and wait for its ruleset in the kernel; "agent did not start" in the report when not.
  bool start(const Options& o, const std::vector<std::string>& extra);
  json status(const Options& o);
  double cpu_seconds() const;
  long rss_kib(bool peak = false) const;  // peak: the highest RSS so far (VmHWM)
  void stop();

 private:
  bool launch(const Options& o, const std::vector<std::string>& extra);
};

// A two-host lab (a client in a, a server on b:8080) and the agent beside it.
struct AgentLab {
  testing::Lab lab;
  testing::Server server;
  Agent agent;
  explicit AgentLab(const std::string& net) : lab("twb", net, {"a", "b"}), server(lab.ns_path("b"), 8080) {}
};

// A `flows.watch` connection: the agent publishes each event (learned flow,
// alert) as it handles it, one JSON line each.
class Watch {
 public:
  explicit Watch(const std::string& sock);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  bool ok() const { return fd_ >= 0; }
  // The next line, or "" after `timeout_ms` without one (or when the agent closed).
  std::string line(int timeout_ms);

 private:
  int fd_ = -1;
  std::string buf_;
};

// --- the sections ------------------------------------------------------------------

void datapath(const Options& o);
void hold(const Options& o);
// `--hold parts` or `--hold alternatives` (parts.cpp), in the datapath lab.
void parts(testing::Lab& lab, const std::string& which);
void programming(const Options& o);
void learning(const Options& o);
void container_start(const Options& o);
void alerts(const Options& o);
void journal(const Options& o);
void memory(const Options& o);
void transfer(const Options& o);
void cri_pods(const Options& o);
int memory_child(std::size_t eps, std::size_t edges);
void radar(const Options& o);
void storm(const Options& o);
void cluster_scale(const Options& o);

}  // namespace topowall::bench
