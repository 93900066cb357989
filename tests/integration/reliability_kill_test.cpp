// Reliability matrix, item 1 (docs/RELIABILITY.md): topowalld SIGKILLed while enforcing, under a probe
// that tries every ordered pair of workloads continuously. Across the kill, the time down and the
// restart, no connection outside the graph succeeds and no allowed one fails. Root only.
// TOPOWALL_RELIABILITY_LONG=1 (tools/reliability.sh) keeps the agent down 30 s instead of 3 s.
#include <atomic>
#include <thread>

#include "daemon_lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {

bool long_run() { return reliability_long_run(); }

struct KillLab : DaemonLab {
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(make_lab("twik", "10.231.9", {"a", "b", "c"})); }
};

// One thread per ordered pair, connecting again and again; what each phase saw.
class Probe {
 public:
  enum Phase { up, down, restarted, kPhases };
  Probe(const Lab& lab, const std::set<std::string>& allowed) {
    for (const char* s : {"a", "b", "c"})
      for (const char* d : {"a", "b", "c"}) {
        if (std::string(s) == d) continue;
        const bool ok = allowed.count(lab.ns(s) + ">" + lab.ns(d)) > 0;
        threads_.emplace_back([this, &lab, s, d, ok] {
          while (!stop_) {
            const Phase p = phase_;
            // A dropped SYN is retried after 1 s: 2.5 s is "failed", not "slow".
            const bool passed = tcp_connect(lab.ns_path(s), lab.ip(d), 8080, ok ? 2500 : 400);
            ++tries_[p];
            if (ok && !passed) ++allowed_failed_[p];
            if (!ok && passed) ++unknown_passed_[p];
          }
        });
      }
  }
  ~Probe() { finish(); }
  void set(Phase p) { phase_ = p; }
  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int tries(Phase p) const { return tries_[p]; }
  int allowed_failed(Phase p) const { return allowed_failed_[p]; }
  int unknown_passed(Phase p) const { return unknown_passed_[p]; }

 private:
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<Phase> phase_{up};
  std::atomic<int> tries_[kPhases]{}, allowed_failed_[kPhases]{}, unknown_passed_[kPhases]{};
};

}  // namespace

TEST_F(KillLab, ReliabilitySigkillWhileEnforcingNeitherOpensNorBreaksAnything) {
  ASSERT_NO_FATAL_FAILURE(start_agent("learn"));
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  ASSERT_TRUE(tcp_connect(lab->ns_path("b"), lab->ip("c"), 8080));
  const std::set<std::string> allowed{lab->ns("a") + ">" + lab->ns("b"), lab->ns("b") + ">" + lab->ns("c")};
  ASSERT_TRUE(eventually([&] { return edges() == allowed; }, 5000)) << "learned: " << cli("topology export --format json");
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock mode enforce >/dev/null"), 0);
  ASSERT_TRUE(eventually([&] { return cli("status").value("mode", "") == "enforce"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the enforcing ruleset is in the kernel

  Probe probe(*lab, allowed);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  probe.set(Probe::down);
  stop_agent(SIGKILL);
  std::this_thread::sleep_for(std::chrono::seconds(long_run() ? 30 : 3));
  probe.set(Probe::restarted);
  ASSERT_NO_FATAL_FAILURE(start_agent("enforce"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  probe.finish();

  const char* name[] = {"while up", "while killed", "across the restart"};
  for (auto p : {Probe::up, Probe::down, Probe::restarted}) {
    EXPECT_GE(probe.tries(p), 12) << name[p] << ": every pair tried at least twice";
    EXPECT_EQ(probe.unknown_passed(p), 0) << name[p] << ": connections outside the graph passed";
    EXPECT_EQ(probe.allowed_failed(p), 0) << name[p] << ": allowed connections failed";
  }
  EXPECT_EQ(edges(), allowed) << "the restarted agent lost or gained edges";
  std::cout << "tries while up / killed / across the restart: " << probe.tries(Probe::up) << " / "
            << probe.tries(Probe::down) << " / " << probe.tries(Probe::restarted) << "\n";
  RecordProperty("tries", probe.tries(Probe::up) + probe.tries(Probe::down) + probe.tries(Probe::restarted));
}
