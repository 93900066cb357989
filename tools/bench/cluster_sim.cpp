#include "cluster_sim.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>
#include <thread>

namespace topowall::bench {

namespace {
const std::string kRoot = "/topowall/v1/";
constexpr int kTxnOps = 100;  // etcd's default --max-txn-ops is 128
}  // namespace

std::string ip4(std::uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

// Node i speaks for 10.(100 + i / 256).(i % 256).0/24: up to 1024 nodes in 10.100.0.0/14.
bool Mirror::simulated(std::uint32_t a) { return (a >> 18) == ((10u << 6) | (100u >> 2)); }

void Mirror::set(std::unordered_map<std::uint32_t, bool>& m, std::uint32_t a, bool v) {
  const bool before = kernel_[a] != expected_[a];
  m[a] = v;
  const bool after = kernel_[a] != expected_[a];
  mismatches_ += static_cast<long>(after) - static_cast<long>(before);
}

void Mirror::kernel(std::uint32_t a, bool added, Clk::time_point t) {
  if (!simulated(a)) return;
  {
    std::lock_guard l(m_);
    const bool was = kernel_[a];
    if (added && !was) ++present_;
    if (!added && was) --present_;
    set(kernel_, a, added);
    if (added) adds_[a].push_back(t);
  }
  cv_.notify_all();
}

void Mirror::expect(std::uint32_t a, bool present) {
  {
    std::lock_guard l(m_);
    set(expected_, a, present);
  }
  cv_.notify_all();
}

long Mirror::mismatches() const {
  std::lock_guard l(m_);
  return mismatches_;
}

std::size_t Mirror::present() const {
  std::lock_guard l(m_);
  return present_;
}

std::optional<Clk::time_point> Mirror::added_after(std::uint32_t a, Clk::time_point since) const {
  std::lock_guard l(m_);
  auto it = adds_.find(a);
  if (it == adds_.end()) return std::nullopt;
  for (auto t : it->second)
    if (t >= since) return t;
  return std::nullopt;
}

SimCluster::SimCluster(int nodes, int per_node, Mirror& mirror)
    : nodes_(nodes), per_node_(per_node), mirror_(mirror), addr_(static_cast<std::size_t>(nodes)),
      free_(static_cast<std::size_t>(nodes)) {
  for (int n = 0; n < nodes_; ++n) {
    for (int e = 0; e < per_node_; ++e) addr_[n].push_back(base(n) + static_cast<std::uint32_t>(e + 1));
    for (int h = per_node_ + 1; h < 255; ++h) free_[n].push_back(base(n) + static_cast<std::uint32_t>(h));
  }
}

std::uint32_t SimCluster::base(int node) {
  return (10u << 24) | ((100u + static_cast<std::uint32_t>(node) / 256) << 16) | ((static_cast<std::uint32_t>(node) % 256) << 8);
}

// As a node writes it (cluster/etcd_codec.cpp's encode_endpoint): 100 workloads spread over the cluster.
std::string SimCluster::value(int node, int ep, std::uint32_t addr) const {
  return json{{"node", fmt::format("sim-{}", node)}, {"id", fmt::format("ep-{}", ep)},
              {"workload", fmt::format("app-{}", ep % 100)}, {"name", fmt::format("pod-{}-{}", node, ep)},
              {"addresses", {ip4(addr)}}}
      .dump();
}

Status SimCluster::load(EtcdConn& c) {
  auto g = c.post("/v3/lease/grant", {{"TTL", 3600}});
  if (!g) return g.error();
  lease_ = g->value("ID", "");
  json ops = json::array();
  auto flush = [&]() -> Status {
    if (ops.empty()) return ok_status();
    auto r = c.post("/v3/kv/txn", {{"success", ops}});
    ops = json::array();
    if (!r) return r.error();
    return ok_status();
  };
  auto put = [&](const std::string& k, const std::string& v) -> Status {
    ops.push_back({{"request_put", {{"key", b64(k)}, {"value", b64(v)}, {"lease", lease_}}}});
    return ops.size() >= kTxnOps ? flush() : ok_status();
  };
  for (int n = 0; n < nodes_; ++n) {
    const auto node = fmt::format("sim-{}", n);
    json v{{"node", node}, {"ranges", {ip4(base(n)) + "/24"}}};
    if (auto st = put(kRoot + "ranges/" + node, v.dump()); !st) return st;
  }
  if (auto st = flush(); !st) return st;  // ranges first: claims are judged by them
  for (int n = 0; n < nodes_; ++n)
    for (int e = 0; e < per_node_; ++e) {
      mirror_.expect(addr_[n][e], true);
      if (auto st = put(fmt::format("{}endpoints/sim-{}/ep-{}", kRoot, n, e), value(n, e, addr_[n][e])); !st) return st;
    }
  return flush();
}

std::uint32_t SimCluster::relocate(int n, int e) {
  auto& fr = free_[n];
  const auto old = addr_[n][e], now = fr.front();
  fr.erase(fr.begin());
  fr.push_back(old);
  addr_[n][e] = now;
  mirror_.expect(old, false);
  mirror_.expect(now, true);
  return now;
}

Change SimCluster::move(EtcdConn& c, int n, std::mt19937& rng) {
  const int e = std::uniform_int_distribution<int>(0, per_node_ - 1)(rng);
  const auto now = relocate(n, e);
  Change ch;
  ch.addr = now;
  ch.sent = Clk::now();
  ch.ok = c.post("/v3/kv/put", {{"key", b64(fmt::format("{}endpoints/sim-{}/ep-{}", kRoot, n, e))},
                                {"value", b64(value(n, e, now))},
                                {"lease", lease_}})
              .ok();
  ch.acked = Clk::now();
  return ch;
}

std::vector<Change> SimCluster::move_batch(EtcdConn& c, int n, int batch, std::mt19937& rng) {
  if (batch <= 1) return {move(c, n, rng)};
  std::set<int> eps;
  while (static_cast<int>(eps.size()) < std::min(batch, per_node_)) eps.insert(std::uniform_int_distribution<int>(0, per_node_ - 1)(rng));
  json ops = json::array();
  std::vector<Change> out;
  for (int e : eps) {
    const auto now = relocate(n, e);
    ops.push_back({{"request_put", {{"key", b64(fmt::format("{}endpoints/sim-{}/ep-{}", kRoot, n, e))},
                                   {"value", b64(value(n, e, now))},
                                   {"lease", lease_}}}});
    out.push_back(Change{now, {}, {}, false});
  }
  const auto sent = Clk::now();
  const bool ok = c.post("/v3/kv/txn", {{"success", ops}}).ok();
  const auto acked = Clk::now();
  for (auto& ch : out) {
    ch.sent = sent;
    ch.acked = acked;
    ch.ok = ok;
  }
  return out;
}

Change SimCluster::move_one(EtcdConn& c) { return move(c, std::uniform_int_distribution<int>(0, nodes_ - 1)(rng_), rng_); }

std::vector<Change> SimCluster::churn(double rate, double seconds, int parts, int batch) {
  std::vector<std::vector<Change>> got(static_cast<std::size_t>(parts));
  std::vector<std::thread> ts;
  const auto t0 = Clk::now();
  for (int p = 0; p < parts; ++p)
    ts.emplace_back([&, p] {
      EtcdConn c("24992");
      std::mt19937 rng(static_cast<unsigned>(p + 1));
      std::vector<int> mine;
      for (int n = p; n < nodes_; n += parts) mine.push_back(n);
      const double each = rate / parts / std::max(batch, 1);  // transactions per second
      const auto count = std::max<long>(1, std::lround(each * seconds));  // a smoke run too moves something
      for (long i = 0; i < count && !mine.empty(); ++i) {
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clk::duration>(
                                               std::chrono::duration<double>((static_cast<double>(i) + p / double(parts)) / each)));
        const int n = mine[std::uniform_int_distribution<std::size_t>(0, mine.size() - 1)(rng)];
        for (auto& ch : move_batch(c, n, batch, rng)) got[p].push_back(ch);
      }
    });
  for (auto& t : ts) t.join();
  std::vector<Change> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  return all;
}

}  // namespace topowall::bench
