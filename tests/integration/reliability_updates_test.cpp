// Reliability matrix, item 2 (docs/RELIABILITY.md): consecutive rule updates under load. The real
// topowalld enforces on four named namespaces while one thread per ordered pair connects again and
// again; the test approves, denies and revokes through the CLI and moves workloads' addresses (onto
// addresses other workloads held before). No allowed connection may fail and none outside the graph
// may pass. Root only. 50 updates; TOPOWALL_RELIABILITY_LONG=1 (tools/reliability.sh): 1,000.
//
// What "allowed" means at each instant: a pair's expected verdict changes only when its update has been
// acknowledged (the CLI exited 0: the agent answers once the change is in the kernel and saved) and a
// settle of kSettle has passed. From the moment an update of the pair starts until then, the pair is
// in transition and its attempts are not judged; an attempt is judged only if the pair's expectation
// did not change from its start to its end. An address move puts every pair of the moved workload in
// transition until `workloads` shows it at its new address only.
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "daemon_lab.hpp"

using namespace topowall;
using namespace topowall::testing;
using nlohmann::json;

namespace {

const std::vector<std::string> kHosts{"a", "b", "c", "d"};
constexpr auto kSettle = std::chrono::milliseconds(150);
constexpr auto kDwell = std::chrono::milliseconds(300);  // after each update, so that the probe sees it

// What each pair is expected to do, and since when; the probe's judge.
class Expectation {
 public:
  struct Snapshot {
    bool judged = false, allowed = false;
    std::uint64_t epoch = 0;
    std::string dst_ip;
  };
  explicit Expectation(const Lab& lab) {
    for (const auto& h : kHosts) ip_[h] = lab.ip(h);
  }
  Snapshot take(const std::string& s, const std::string& d) {
    std::lock_guard lock(m_);
    const auto& p = pairs_[s + ">" + d];
    return {p.judged, p.allowed, p.epoch, ip_[d]};
  }
  bool unchanged(const std::string& s, const std::string& d, std::uint64_t epoch) {
    std::lock_guard lock(m_);
    return pairs_[s + ">" + d].epoch == epoch;
  }
  // An update of the pair starts: not judged until settled.
  void begin(const std::string& pair) {
    std::lock_guard lock(m_);
    pairs_[pair].judged = false;
    ++pairs_[pair].epoch;
  }
  void settle(const std::string& pair, bool allowed) {
    std::lock_guard lock(m_);
    pairs_[pair] = {true, allowed, pairs_[pair].epoch + 1};
  }
  void move(const std::string& host, const std::string& ip) {
    std::lock_guard lock(m_);
    ip_[host] = ip;
  }
  std::string ip(const std::string& host) {
    std::lock_guard lock(m_);
    return ip_[host];
  }

 private:
  struct Pair {
    bool judged = true, allowed = false;  // every pair starts blocked: the agent enforces an empty graph
    std::uint64_t epoch = 0;
  };
  std::mutex m_;
  std::map<std::string, Pair> pairs_;
  std::map<std::string, std::string> ip_;
};

// One thread per ordered pair, connecting again and again and judging each attempt.
class Probe {
 public:
  Probe(const Lab& lab, Expectation& exp) {
    for (const auto& s : kHosts)
      for (const auto& d : kHosts)
        if (s != d) threads_.emplace_back([this, &lab, &exp, s, d] { run(lab, exp, s, d); });
  }
  ~Probe() { finish(); }
  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  std::atomic<int> allowed_tries{0}, blocked_tries{0}, unjudged{0}, allowed_failed{0}, unknown_passed{0};
  std::vector<std::string> failures() {
    std::lock_guard lock(m_);
    return failures_;
  }

 private:
  void run(const Lab& lab, Expectation& exp, const std::string& s, const std::string& d) {
    while (!stop_) {
      const auto snap = exp.take(s, d);
      // A dropped SYN is retried after 1 s: 2.5 s is "failed", not "slow".
      const bool passed = tcp_connect(lab.ns_path(s), snap.dst_ip, 8080, snap.allowed ? 2500 : 400);
      if (!snap.judged || !exp.unchanged(s, d, snap.epoch)) {
        ++unjudged;
        continue;
      }
      ++(snap.allowed ? allowed_tries : blocked_tries);
      if (snap.allowed == passed) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // leave the two cores to the agent too
        continue;
      }
      ++(passed ? unknown_passed : allowed_failed);
      std::lock_guard lock(m_);
      failures_.push_back(s + ">" + d + " at " + snap.dst_ip + (passed ? " passed" : " failed"));
    }
  }
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::vector<std::string> failures_;
};

struct Model;
struct Update;

struct UpdatesLab : DaemonLab {
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(make_lab("twiu", "10.231.12", kHosts));
    if (IsSkipped()) return;  // a skip in make_lab ends only make_lab: there is no lab
    // Deleting an interface's primary address would take its secondaries (the new one) with it.
    for (const auto& h : kHosts)
      ASSERT_EQ(sh("ip netns exec " + lab->ns(h) + " sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1"), 0);
  }
  std::string name(const std::string& host) const { return lab->ns(host); }
  // The hosts' pairs the agent lists as pending on tcp/8080.
  std::set<std::string> pending() {
    std::set<std::string> out;
    const json p = cli("flows pending");
    const std::string ours = prefix_ + "-";  // not `world`: a probe of an address just left
    for (const auto& f : p) {
      const auto src = f.value("src", ""), dst = f.value("dst", "");
      if (f.value("port", 0) == 8080 && src.rfind(ours, 0) == 0 && dst.rfind(ours, 0) == 0)
        out.insert(src.substr(ours.size()) + ">" + dst.substr(ours.size()));
    }
    return out;
  }
  // The addresses `workloads` shows for a host.
  std::set<std::string> addresses_of(const std::string& host) {
    std::set<std::string> out;
    const json w = cli("workloads");
    for (const auto& wl : w)
      if (wl["name"] == name(host))
        for (const auto& a : wl["addresses"]) out.insert(a.get<std::string>());
    return out;
  }
  // Moves a host to `to` (added, then the old one deleted) and waits until the agent shows it there only.
  ::testing::AssertionResult move(const std::string& host, const std::string& from, const std::string& to) {
    const std::string ns = "ip -n " + lab->ns(host);
    if (sh(ns + " addr add " + to + "/24 dev eth0") != 0 || sh(ns + " addr del " + from + "/24 dev eth0") != 0 ||
        sh(ns + " route replace default via " + lab->gateway()) != 0)
      return ::testing::AssertionFailure() << "could not move " << host << " from " << from << " to " << to;
    // The other namespaces' neighbour caches still point the moved addresses at their old owners.
    for (const auto& h : kHosts) sh("ip -n " + lab->ns(h) + " neigh flush all");
    if (!eventually([&] { return addresses_of(host) == std::set<std::string>{to}; }, 5000))
      return ::testing::AssertionFailure() << "the agent did not see " << host << " move to " << to;
    return ::testing::AssertionSuccess();
  }
  void decide(Model& m, const Update& u);
  void relocate(Model& m, const std::string& host, std::mt19937& rng);

  std::unique_ptr<Expectation> exp;
};

// The graph the updates build, and the addresses no host holds.
struct Model {
  std::set<std::string> allowed, denied;
  std::vector<std::string> free_ips;
};

// One update: what it does to which pair (or host, for a move).
struct Update {
  std::string kind;  // approve, deny, revoke, undeny, move; empty: nothing to do yet
  std::string pair;
};

template <class C>
auto pick(const C& c, std::mt19937& rng) {
  return *std::next(c.begin(), static_cast<long>(std::uniform_int_distribution<std::size_t>(0, c.size() - 1)(rng)));
}

// Approvals and denials need a pending flow (the probe's blocked attempts make them).
// Every fifth update is an address move.
Update choose(int n, const Model& m, const std::set<std::string>& pending, std::mt19937& rng) {
  if (n % 5 == 4) return {"move", pick(kHosts, rng)};
  std::vector<std::string> open;
  for (const auto& p : pending)
    if (!m.allowed.count(p) && !m.denied.count(p)) open.push_back(p);
  const int roll = std::uniform_int_distribution<int>(0, 99)(rng);
  if (roll < 45 && !open.empty()) return {"approve", pick(open, rng)};
  if (roll < 60 && !open.empty()) return {"deny", pick(open, rng)};
  if (roll < 85 && !m.allowed.empty()) return {"revoke", pick(m.allowed, rng)};
  if (!m.denied.empty()) return {"undeny", pick(m.denied, rng)};
  return {};
}

std::string src_of(const std::string& pair) { return pair.substr(0, pair.find('>')); }
std::string dst_of(const std::string& pair) { return pair.substr(pair.find('>') + 1); }

}  // namespace

// An approval, denial, revocation or undenial through the CLI: the pair is judged again after the ack + settle.
void UpdatesLab::decide(Model& m, const Update& u) {
  exp->begin(u.pair);
  const std::string src = name(src_of(u.pair)), dst = name(dst_of(u.pair));
  const std::string args = u.kind == "approve" ? "flows approve --src " + src + " --dst " + dst
                           : u.kind == "deny"  ? "flows deny --src " + src + " --dst " + dst
                                               : "edges remove " + src + " " + dst + " tcp/8080";
  ASSERT_EQ(cli_rc(args), 0) << args;
  m.allowed.erase(u.pair);
  m.denied.erase(u.pair);
  if (u.kind == "approve") m.allowed.insert(u.pair);
  if (u.kind == "deny") m.denied.insert(u.pair);
  std::this_thread::sleep_for(kSettle);
  exp->settle(u.pair, u.kind == "approve");
}

// A host onto one of the three addresses freed last (often another host's before): its pairs are judged
// again once the agent shows it there and the settle has passed.
void UpdatesLab::relocate(Model& m, const std::string& host, std::mt19937& rng) {
  const auto from = exp->ip(host);
  const auto slot = m.free_ips.end() - static_cast<long>(
      1 + std::uniform_int_distribution<std::size_t>(0, std::min<std::size_t>(3, m.free_ips.size()) - 1)(rng));
  const auto to = *slot;
  m.free_ips.erase(slot);
  m.free_ips.push_back(from);
  for (const auto& o : kHosts)
    if (o != host) exp->begin(host + ">" + o), exp->begin(o + ">" + host);
  ASSERT_TRUE(move(host, from, to));
  exp->move(host, to);
  std::this_thread::sleep_for(kSettle);
  for (const auto& o : kHosts)
    if (o != host)
      exp->settle(host + ">" + o, m.allowed.count(host + ">" + o) > 0), exp->settle(o + ">" + host, m.allowed.count(o + ">" + host) > 0);
}

TEST_F(UpdatesLab, ReliabilityRuleUpdatesUnderLoadNeverOpenNorBreakAnything) {
  ASSERT_NO_FATAL_FAILURE(start_agent("enforce"));
  const int updates = reliability_long_run() ? 1000 : 50;
  const auto seed = static_cast<unsigned>(std::random_device{}());
  std::mt19937 rng(seed);
  Model model;
  for (int i = 10; i <= 30; ++i) model.free_ips.push_back("10.231.12." + std::to_string(i));
  exp = std::make_unique<Expectation>(*lab);
  Probe probe(*lab, *exp);
  std::map<std::string, int> done;
  const auto t0 = std::chrono::steady_clock::now();
  for (int n = 0; n < updates;) {
    const auto u = choose(n, model, pending(), rng);
    if (u.kind.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the probe has not made a pending flow yet
      continue;
    }
    if (u.kind == "move") ASSERT_NO_FATAL_FAILURE(relocate(model, u.pair, rng)) << "update " << n << ", seed " << seed;
    else ASSERT_NO_FATAL_FAILURE(decide(model, u)) << "update " << n << ", seed " << seed;
    ++done[u.kind];
    ++n;
    std::this_thread::sleep_for(kDwell);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  probe.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::cout << updates << " updates in " << secs << " s (seed " << seed << "):";
  for (const auto& [op, count] : done) std::cout << " " << op << " " << count;
  std::cout << "\njudged attempts: " << probe.allowed_tries << " allowed, " << probe.blocked_tries << " blocked ("
            << probe.unjudged << " in transition)\n";
  for (const auto& f : probe.failures()) std::cout << "  " << f << "\n";
  EXPECT_EQ(probe.unknown_passed, 0) << "connections outside the graph passed";
  EXPECT_EQ(probe.allowed_failed, 0) << "allowed connections failed";
  EXPECT_GE(probe.allowed_tries, updates) << "the probe hardly tried allowed pairs";
  EXPECT_GE(probe.blocked_tries, updates) << "the probe hardly tried blocked pairs";
  std::set<std::string> want;
  for (const auto* set : {&model.allowed, &model.denied})
    for (const auto& p : *set) want.insert(name(src_of(p)) + ">" + name(dst_of(p)));
  EXPECT_EQ(edges(), want) << "the graph is not what the updates made";
  RecordProperty("updates", updates);
  RecordProperty("judged", probe.allowed_tries + probe.blocked_tries);
}
