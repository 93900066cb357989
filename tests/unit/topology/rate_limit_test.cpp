// Token buckets per key: one key's flood never takes the others' tokens.
#include <gtest/gtest.h>

#include "topowall/topology/rate_limit.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
const TimePoint t0 = Clock::now();
TimePoint at_ms(int ms) { return t0 + std::chrono::milliseconds(ms); }
int allowed(KeyedRateLimiter& l, const std::string& key, int n, TimePoint now) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += l.allow(key, now);
  return ok;
}
}  // namespace

TEST(RateLimit, ABurstThenTheRatePerKey) {
  KeyedRateLimiter l({20, 50});
  EXPECT_EQ(allowed(l, "web", 1000, at_ms(0)), 50) << "the burst";
  EXPECT_EQ(l.limited(), 950u);
  EXPECT_EQ(allowed(l, "api", 1, at_ms(0)), 1) << "another key has its own bucket";
  EXPECT_EQ(allowed(l, "web", 100, at_ms(500)), 10) << "half a second at 20/s";
  EXPECT_EQ(allowed(l, "web", 100, at_ms(60500)), 50) << "refilled up to the burst, no more";
  EXPECT_EQ(l.limited_by_key(), (std::map<std::string, std::uint64_t>{{"web", 950 + 90 + 50}}));
  EXPECT_EQ(l.limited(), 1090u);
}

TEST(RateLimit, AClockSteppedBackRefillsNothing) {
  KeyedRateLimiter l({10, 2});
  EXPECT_EQ(allowed(l, "web", 3, at_ms(10000)), 2);
  EXPECT_EQ(allowed(l, "web", 3, at_ms(0)), 0);
  EXPECT_EQ(allowed(l, "web", 3, at_ms(10100)), 1) << "refills from the latest time seen";
}

TEST(RateLimit, IdleKeysAreForgotten) {
  KeyedRateLimiter l({10, 5});
  for (int i = 0; i < 1000; ++i) (void)l.allow("w" + std::to_string(i), at_ms(i));
  EXPECT_LT(l.buckets(), 300u) << "refilled buckets are dropped as keys come and go";
  EXPECT_EQ(l.limited(), 0u);
  KeyedRateLimiter zero({0, 0});
  EXPECT_TRUE(zero.allow("web", at_ms(0))) << "a burst below one is one";
  EXPECT_FALSE(zero.allow("web", at_ms(100000)));
}
