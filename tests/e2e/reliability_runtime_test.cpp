// Reliability matrix, item 5 (docs/RELIABILITY.md): the runtime API down, stalled, slow and back, with the
// real topowalld enforcing on the real kernel and discovering real podman containers through
// `podman system service`, behind a FaultProxy that plays the API's faults. Throughout, a probe of every
// ordered pair sees no allowed connection fail and none outside the graph pass; after each fault the agent
// reconnects and picks up what changed while it was blind. Root only.
// The short run gives the agent a 2 s request timeout (`--runtime-timeout`) so that the stall and the slowness
// take seconds; TOPOWALL_RELIABILITY_LONG=1 (tools/reliability.sh) keeps the default 10 s: down 30 s instead
// of 3, stalled 40 s instead of 5, answers 12 s late for 14 s instead of 3 s late for 5.
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "fault_proxy.hpp"
#include "pair_probe.hpp"
#include "podman_lab.hpp"

using namespace topowall::testing;
using namespace topowall::testing::e2e;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

bool long_run() { return std::getenv("TOPOWALL_RELIABILITY_LONG") != nullptr; }

struct RuntimeFaultLab : PodmanLab {
  void SetUp() override {
    PodmanLab::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    proxy = std::make_unique<FaultProxy>("unix:" + dir + "/runtime.sock", "unix:" + runtime_socket());
    ASSERT_TRUE(proxy->ok()) << "could not listen on " << dir << "/runtime.sock";
    agent_runtime = dir + "/runtime.sock";
  }
  void TearDown() override {
    PodmanLab::TearDown();
    proxy.reset();
  }
  std::string netns_of(const std::string& name) {
    auto out = sh_out("podman inspect -f '{{.NetworkSettings.SandboxKey}}' " + name);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  json status() {
    auto s = cli("status");
    return s.is_object() ? s : json::object();  // an agent that does not answer reads as "nothing yet"
  }
  std::uint64_t counter(const std::string& name) {
    const auto s = status();
    return s.contains("counters") ? s["counters"].value(name, std::uint64_t{0}) : 0;
  }
  int endpoints() { return status().value("endpoints", -1); }

  std::unique_ptr<FaultProxy> proxy;
};

enum Phase { up, down, restarted, stalled, slow, recovered };
const char* const kPhaseName[] = {"while up", "while the API was down", "after it came back", "while it stalled",
                                  "while it was slow", "after the slowness"};

}  // namespace

TEST_F(RuntimeFaultLab, ReliabilityRuntimeApiDownStalledSlowAndBackEnforcementHoldsAndDiscoveryResyncs) {
  for (const char* w : {"web", "api", "db"}) run(std::string("topowall-e2e-") + w, w, "httpd -f -p 8080 -h /www");
  run("topowall-e2e-old", "old", "sleep 600");
  const auto timeout = long_run() ? 10s : 2s;  // the agent's, per request
  ASSERT_NO_FATAL_FAILURE(start_agent("learn", long_run() ? std::vector<std::string>{}
                                                          : std::vector<std::string>{"--runtime-timeout", "2s"}));
  ASSERT_TRUE(eventually([&] { return endpoints() == 4; })) << status().dump();
  std::map<std::string, std::string> ns, ip;
  for (const char* w : {"web", "api", "db"}) {
    ns[w] = netns_of(std::string("topowall-e2e-") + w);
    ip[w] = ip_of(std::string("topowall-e2e-") + w);
  }
  ASSERT_TRUE(tcp_connect(ns["web"], ip["api"], 8080));
  ASSERT_TRUE(eventually([&] { return edges() == std::set<std::string>{"web>api:tcp/8080"}; })) << edges().size();
  ASSERT_EQ(cli("mode enforce")["mode"], "enforce");
  std::this_thread::sleep_for(300ms);  // the enforcing ruleset is in the kernel

  std::vector<PairProbe::Pair> pairs;
  for (const char* s : {"web", "api", "db"})
    for (const char* d : {"web", "api", "db"})
      if (std::string(s) != d) pairs.push_back({std::string(s) + ">" + d, ns[s], ip[d], 8080, s == std::string("web") && d == std::string("api")});
  PairProbe probe(pairs);
  // Each phase needs its tries, whatever the machine's load makes a try cost: waited for, not slept.
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return probe.tries(up) >= 6; }, 15s));

  // Down: the API refuses connections. A container started meanwhile is allowed nowhere (discovery is
  // blind: its address is nobody's), one removed meanwhile is forgotten once the API is back.
  const auto reconnects0 = counter("runtime_reconnects");
  probe.phase(down);
  proxy->set(FaultProxy::Mode::down);
  const auto down_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return !status().value("runtime_connected", true); }, 5s)) << "the loss is shown";
  run("topowall-e2e-web-2", "web", "httpd -f -p 8080 -h /www");
  ASSERT_EQ(sh("podman rm -f -t 0 topowall-e2e-old"), 0);
  const auto web2_ns = netns_of("topowall-e2e-web-2");
  EXPECT_FALSE(tcp_connect(web2_ns, ip["api"], 8080, 400)) << "a container started while discovery is blind passed";
  std::this_thread::sleep_until(down_at + (long_run() ? 30s : 3s));
  probe.phase(restarted);
  proxy->set(FaultProxy::Mode::pass);
  EXPECT_TRUE(eventually([&] { return endpoints() == 4 && tcp_connect(web2_ns, ip["api"], 8080, 1000); }, 15s))
      << "within 15 s of the API's return, web-2 is web and old is gone: " << status().dump();
  EXPECT_GT(counter("runtime_reconnects"), reconnects0) << "the reconnect is counted";

  // Stalled: connections are accepted and nothing is answered. The event loop must not wait on it.
  probe.phase(stalled);
  proxy->set(FaultProxy::Mode::stall);
  run("topowall-e2e-web-3", "web", "httpd -f -p 8080 -h /www");
  const auto web3_ns = netns_of("topowall-e2e-web-3");
  const auto stall_end = std::chrono::steady_clock::now() + (long_run() ? 40s : 5s);
  std::chrono::milliseconds worst{0};
  int answered = 0, asked = 0;
  while (std::chrono::steady_clock::now() < stall_end) {
    const auto t0 = std::chrono::steady_clock::now();
    ++asked;
    if (cli("status").is_object()) ++answered;
    worst = std::max(worst, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0));
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(answered, asked) << "status went unanswered while the runtime API stalled";
  EXPECT_LT(worst, 2000ms) << "status was held up by the stalled runtime API";
  EXPECT_FALSE(tcp_connect(web3_ns, ip["api"], 8080, 400)) << "a container the agent has not seen passed";

  // Slow: the API answers late (beyond the agent's request timeout) for a while: the held start of web-3
  // arrives late, and its inspect times out. The agent must not give the container up.
  probe.phase(slow);
  proxy->set_answer_delay(timeout + (long_run() ? 2s : 1s));
  proxy->set(FaultProxy::Mode::pass);
  std::this_thread::sleep_for(long_run() ? 14s : 5s);
  proxy->set_answer_delay(0ms);
  probe.phase(recovered);
  EXPECT_TRUE(eventually([&] { return endpoints() == 5 && tcp_connect(web3_ns, ip["api"], 8080, 1000); }, 25s))
      << "web-3, started while the API stalled, was not picked up within 25 s of the API's recovery: "
      << status().dump();
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return probe.tries(recovered) >= 6; }, 15s));
  probe.finish();

  for (auto p : {up, down, restarted, stalled, slow, recovered}) {
    EXPECT_GE(probe.tries(p), 6) << kPhaseName[p] << ": every pair tried";
    EXPECT_EQ(probe.unknown_passed(p), 0) << kPhaseName[p] << ": connections outside the graph passed";
    EXPECT_EQ(probe.allowed_failed(p), 0) << kPhaseName[p] << ": allowed connections failed";
  }
  EXPECT_TRUE(probe.wrong().empty()) << probe.wrong();
  const auto counters = status().value("counters", json::object());
  std::cout << "probe tries: " << probe.total_tries() << "; status during the stall: " << answered << "/" << asked
            << " answered, worst " << worst.count() << " ms; runtime_reconnects " << counters.value("runtime_reconnects", 0)
            << ", runtime_errors " << counters.value("runtime_errors", 0) << "\n";
  RecordProperty("tries", probe.total_tries());
}
