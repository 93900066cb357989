// Token buckets per key (the agent's: per source workload), so one noisy key cannot use up what the
// others need. Pure: the caller passes the time.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "topowall/types.hpp"

namespace topowall::topology {

struct Rate {
  double per_second = 20;  // refill
  double burst = 50;       // bucket size; at least 1
};

class KeyedRateLimiter {
 public:
  explicit KeyedRateLimiter(Rate rate = {}) : rate_(rate) {}
  // Takes a token from `key`'s bucket (full the first time a key is seen). False when it is empty: the
  // caller drops the event, counted here for `key`.
  [[nodiscard]] bool allow(const std::string& key, TimePoint now);
  std::uint64_t limited() const { return limited_; }
  // Events refused per key since the start (keys that were never refused are absent).
  const std::map<std::string, std::uint64_t>& limited_by_key() const { return limited_by_key_; }
  std::size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint last{};
  };
  void prune(TimePoint now);

  Rate rate_;
  std::map<std::string, Bucket> buckets_;
  std::map<std::string, std::uint64_t> limited_by_key_;
  std::uint64_t limited_ = 0;
  std::size_t prune_at_ = 64;
};

}  // namespace topowall::topology
