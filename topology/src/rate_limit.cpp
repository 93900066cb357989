#include "topowall/topology/rate_limit.hpp"

#include <algorithm>
#include <chrono>

namespace topowall::topology {

namespace {
double seconds_between(TimePoint from, TimePoint to) {
  // A clock stepped back refills nothing (and takes nothing away).
  return to > from ? std::chrono::duration<double>(to - from).count() : 0.0;
}
}  // namespace

bool KeyedRateLimiter::allow(const std::string& key, TimePoint now) {
  const double burst = std::max(rate_.burst, 1.0);
  if (buckets_.size() >= prune_at_) prune(now);
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst, now});
  auto& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + seconds_between(b.last, now) * std::max(rate_.per_second, 0.0));
    b.last = std::max(b.last, now);
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  ++limited_;
  ++limited_by_key_[key];
  return false;
}

// A bucket that has refilled is the same as none: dropped, so keys that went away cost nothing.
void KeyedRateLimiter::prune(TimePoint now) {
  const double burst = std::max(rate_.burst, 1.0);
  std::erase_if(buckets_, [&](const auto& kv) {
    return kv.second.tokens + seconds_between(kv.second.last, now) * std::max(rate_.per_second, 0.0) >= burst;
  });
  prune_at_ = std::max<std::size_t>(64, 2 * buckets_.size());
}

}  // namespace topowall::topology
