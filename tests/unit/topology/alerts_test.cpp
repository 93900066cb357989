#include <gtest/gtest.h>

#include "topowall/topology/alerts.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
Alert make(TimePoint t, bool blocked = true) {
  Alert a;
  a.time = t;
  a.edge = {"db", "api", Proto::tcp, 8080};
  a.src_addr = "10.0.0.9";
  a.dst_addr = "10.0.0.4";
  a.blocked = blocked;
  return a;
}
}  // namespace

TEST(Alerts, FirstAlertsAtOnceRepeatsAreFolded) {
  AlertAggregator agg(std::chrono::seconds(10));
  auto t0 = Clock::now();
  ASSERT_TRUE(agg.on_packet(make(t0)));
  for (int i = 1; i <= 50; ++i) EXPECT_FALSE(agg.on_packet(make(t0 + std::chrono::milliseconds(i * 10))));
  EXPECT_TRUE(agg.on_packet(make(t0, false))) << "monitor and enforce verdicts are separate flows";
  EXPECT_TRUE(agg.flush(t0 + std::chrono::seconds(5)).empty());
  auto s = agg.flush(t0 + std::chrono::seconds(11));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].summary);
  EXPECT_EQ(s[0].count, 50u);
  EXPECT_EQ(agg.suppressed(), 50u);
  EXPECT_TRUE(agg.on_packet(make(t0 + std::chrono::seconds(12)))) << "a new window alerts again";
}

TEST(Alerts, JsonAndTextNameBothWorkloads) {
  auto a = make(Clock::now());
  auto j = alert_to_json(a);
  EXPECT_EQ(j["src"], "db");
  EXPECT_EQ(j["dst"], "api");
  EXPECT_EQ(j["verdict"], "blocked");
  EXPECT_EQ(j["src_addr"], "10.0.0.9");
  EXPECT_EQ(alert_text(a), "BLOCKED db (10.0.0.9) -> api (10.0.0.4) tcp/8080");
  a.blocked = false;
  EXPECT_EQ(alert_to_json(a)["verdict"], "would-block");
  EXPECT_EQ(alert_to_json(a)["reason"], "no_edge");
  a.reason = "ctmark_taken";
  EXPECT_EQ(alert_to_json(a)["reason"], "ctmark_taken");
  EXPECT_EQ(alert_text(a),
            "WOULD-BLOCK db (10.0.0.9) -> api (10.0.0.4) tcp/8080 (its conntrack mark was already set by another component)");
}
