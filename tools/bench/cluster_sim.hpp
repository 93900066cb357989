// The simulated cluster of section 12: N nodes of M endpoints each, written to etcd the way a real
// node writes (its range announced under <root>ranges/<node>, each endpoint under
// <root>endpoints/<node>/<id>, both under a lease), and what the kernel shows against what etcd says.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "common.hpp"
#include "etcd.hpp"

namespace topowall::bench {

// The kernel's elements (from a SetWatch) against the addresses etcd holds, for the simulated ranges.
class Mirror {
 public:
  void kernel(std::uint32_t a, bool added, Clk::time_point t);
  void expect(std::uint32_t a, bool present);
  long mismatches() const;
  std::size_t present() const;  // simulated addresses the kernel holds
  // The first time `a` entered the kernel at or after `since`.
  std::optional<Clk::time_point> added_after(std::uint32_t a, Clk::time_point since) const;
  // Waits until `pred()` (called under the lock) holds; false after `seconds`.
  template <class P>
  bool wait(P pred, double seconds) {
    std::unique_lock l(m_);
    return cv_.wait_for(l, std::chrono::duration<double>(seconds), [&] { return pred(); });
  }
  long mismatches_locked() const { return mismatches_; }
  std::size_t present_locked() const { return present_; }

 private:
  static bool simulated(std::uint32_t a);
  void set(std::unordered_map<std::uint32_t, bool>& m, std::uint32_t a, bool v);
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::unordered_map<std::uint32_t, bool> kernel_, expected_;
  std::unordered_map<std::uint32_t, std::vector<Clk::time_point>> adds_;
  long mismatches_ = 0;
  std::size_t present_ = 0;
};

// One remote change as the load generator made it.
struct Change {
  std::uint32_t addr = 0;  // the endpoint's new address
  Clk::time_point sent, acked;
  bool ok = false;
};

class SimCluster {
 public:
  SimCluster(int nodes, int per_node, Mirror& mirror);
  // Ranges, then every endpoint, in transactions; the lease the simulated nodes write under.
  [[nodiscard]] Status load(EtcdConn& c);
  // Moves endpoints of nodes n with n % of == part to their node's next free address, `rate` per
  // second for `seconds` (paced; a writer waits for each acknowledgement, so etcd's put latency can cap
  // the rate: the caller reports the rate achieved); one writer per part, each on its own connection.
  // `batch`: endpoints one node moves in one transaction (a rollout replacing several pods at once).
  std::vector<Change> churn(double rate, double seconds, int parts, int batch = 1);
  // One move of a random endpoint; sent and acknowledged before it returns.
  Change move_one(EtcdConn& c);
  std::size_t endpoints() const { return static_cast<std::size_t>(nodes_) * static_cast<std::size_t>(per_node_); }

 private:
  // An endpoint's next free address of its node's range (the mirror told); returns it.
  std::uint32_t relocate(int node, int ep);
  Change move(EtcdConn& c, int node, std::mt19937& rng);
  std::vector<Change> move_batch(EtcdConn& c, int node, int batch, std::mt19937& rng);
  std::string value(int node, int ep, std::uint32_t addr) const;
  static std::uint32_t base(int node);
  int nodes_, per_node_;
  Mirror& mirror_;
  std::string lease_;
  std::vector<std::vector<std::uint32_t>> addr_;  // [node][ep] -> its address
  std::vector<std::vector<std::uint32_t>> free_;  // [node] -> unused addresses of its range, oldest first
  std::mt19937 rng_{42};
};

std::string ip4(std::uint32_t a);

}  // namespace topowall::bench
