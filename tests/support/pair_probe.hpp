// The reliability matrix's probe: one thread per ordered pair of workloads, connecting again and again
// through the phases of a fault, counting per phase the allowed connections that failed and the ones
// outside the graph that passed. Both counts must stay zero for enforcement to "hold".
#pragma once

#include <atomic>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lab.hpp"

namespace topowall::testing {

class PairProbe {
 public:
  struct Pair {
    std::string name;     // "web>api", for the report
    std::string ns_path;  // the source's network namespace
    std::string ip;       // the destination's address
    int port = 8080;
    bool allowed = false;
  };
  static constexpr int kPhases = 8;

  explicit PairProbe(std::vector<Pair> pairs) : pairs_(std::move(pairs)) {
    for (std::size_t i = 0; i < pairs_.size(); ++i)
      threads_.emplace_back([this, i] {
        const auto& p = pairs_[i];
        while (!stop_) {
          const int ph = phase_;
          // A dropped SYN is retried after 1 s: 2.5 s without a handshake is "failed", not "slow".
          const bool passed = tcp_connect(p.ns_path, p.ip, p.port, p.allowed ? 2500 : 400);
          ++tries_[ph];
          if (p.allowed == passed) continue;
          ++(p.allowed ? allowed_failed_ : unknown_passed_)[ph];
          std::lock_guard<std::mutex> lock(mu_);
          if (wrong_.size() < 20) wrong_.push_back("phase " + std::to_string(ph) + ": " + p.name + (passed ? " passed" : " failed"));
        }
      });
  }
  ~PairProbe() { finish(); }
  void phase(int p) { phase_ = p; }
  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int tries(int p) const { return tries_[p]; }
  int allowed_failed(int p) const { return allowed_failed_[p]; }
  int unknown_passed(int p) const { return unknown_passed_[p]; }
  int total_tries() const {
    int n = 0;
    for (const auto& t : tries_) n += t;
    return n;
  }
  std::string wrong() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::ostringstream out;
    for (const auto& w : wrong_) out << w << "; ";
    return out.str();
  }

 private:
  std::vector<Pair> pairs_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> phase_{0};
  std::atomic<int> tries_[kPhases]{}, allowed_failed_[kPhases]{}, unknown_passed_[kPhases]{};
  mutable std::mutex mu_;
  std::vector<std::string> wrong_;
};

}  // namespace topowall::testing
