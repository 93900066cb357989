#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "topowall/topology/counters.hpp"
#include "topowall/topology/metrics.hpp"

using namespace topowall::topology;
using nlohmann::json;

namespace {
// The sample lines only (no # HELP / # TYPE), for exact comparison.
std::string samples(const std::string& text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto line = text.substr(pos, nl - pos);
    if (!line.empty() && line[0] != '#') out += line + "\n";
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}
}  // namespace

TEST(Metrics, StatusBecomesGaugesAndCounters) {
  json status = {{"mode", "enforce"},
                 {"mode_overrides", {{"api", "monitor"}}},
                 {"workloads", 3},
                 {"endpoints", 7},
                 {"edges", 12},
                 {"pending", 2},
                 {"discovery_synced", true},
                 {"ruleset_applied", false},
                 {"learning", {{"new_edges_per_minute", 1.5}}},
                 {"event_to_enforced_ms", {{"p50", 6.1}, {"p99", 14.6}, {"samples", 40}}},
                 {"counters", {{"conntrack_enobufs", 4}, {"conntrack_rcvbuf_bytes", 4194304}, {"new-thing", 1}}}};
  const auto text = prometheus_text(status);
  EXPECT_EQ(samples(text),
            "topowall_mode{mode=\"learn\"} 0\n"
            "topowall_mode{mode=\"monitor\"} 0\n"
            "topowall_mode{mode=\"enforce\"} 1\n"
            "topowall_workload_mode{workload=\"api\",mode=\"monitor\"} 1\n"
            "topowall_workloads 3\n"
            "topowall_endpoints 7\n"
            "topowall_edges 12\n"
            "topowall_pending 2\n"
            "topowall_discovery_synced 1\n"
            "topowall_ruleset_applied 0\n"
            "topowall_learning_new_edges_per_minute 1.5\n"
            "topowall_event_to_enforced_ms{quantile=\"0.5\"} 6.1\n"
            "topowall_event_to_enforced_ms{quantile=\"0.99\"} 14.6\n"
            "topowall_event_to_enforced_ms_count 40\n"
            "topowall_conntrack_enobufs_total 4\n"
            "topowall_conntrack_rcvbuf_bytes 4194304\n"
            "topowall_new_thing_total 1\n");
  // Every family is typed; a counter that degrades says so in its help.
  EXPECT_NE(text.find("# TYPE topowall_conntrack_enobufs_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE topowall_conntrack_rcvbuf_bytes gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE topowall_event_to_enforced_ms summary\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP topowall_conntrack_enobufs_total conntrack event overruns"), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscapedAndJunkIsSkipped) {
  json status = {{"mode_overrides", {{"we\"ird\\name\n", "enforce"}}}, {"counters", {{"text", "x"}, {"ok", 1}}}};
  EXPECT_EQ(samples(prometheus_text(status)),
            "topowall_workload_mode{workload=\"we\\\"ird\\\\name\\n\",mode=\"enforce\"} 1\n"
            "topowall_ok_total 1\n");
  EXPECT_EQ(prometheus_text(json::array()), "");
  EXPECT_EQ(prometheus_text(json{{"mode", 3}}), "") << "a mode that is not a string is left out";
}

// Every counter the agent reports has its own help line, and the rate-limited alerts are also per workload.
TEST(Metrics, NewCountersHaveTheirMeaningAndPerWorkloadRateLimits) {
  json status = {{"alerts_rate_limited_by_workload", {{"web", 950}}},
                 {"counters",
                  {{"pending_evicted", 2000}, {"alerts_rate_limited", 950}, {"control_paused", 1},
                   {"control_slow_closed", 0}, {"control_output_bytes", 4096}}}};
  const auto text = prometheus_text(status);
  EXPECT_EQ(samples(text),
            "topowall_workload_alerts_rate_limited_total{workload=\"web\"} 950\n"
            "topowall_alerts_rate_limited_total 950\n"
            "topowall_control_output_bytes 4096\n"
            "topowall_control_paused_total 1\n"
            "topowall_control_slow_closed_total 0\n"
            "topowall_pending_evicted_total 2000\n");
  for (const char* name : {"pending_evicted_total", "alerts_rate_limited_total", "control_paused_total",
                           "control_slow_closed_total", "control_output_bytes"}) {
    const auto help = std::string("# HELP topowall_") + name + " ";
    auto at = text.find(help);
    ASSERT_NE(at, std::string::npos) << name;
    // The generic help is the key itself; these have a sentence.
    const auto meaning = text.substr(at + help.size(), text.find('\n', at) - at - help.size());
    EXPECT_NE(meaning.find(' '), std::string::npos) << name;
  }
  EXPECT_NE(text.find("# TYPE topowall_control_output_bytes gauge\n"), std::string::npos);
}

// docs/PROTOCOL.md's counters section is the declared table, word for word. After changing the table,
// regenerate it with TOPOWALL_UPDATE_DOCS=1 and review the diff.
TEST(Counters, TheProtocolDocumentListsExactlyTheDeclaredCounters) {
  const std::string path = std::string(TOPOWALL_SOURCE_DIR) + "/docs/PROTOCOL.md";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = ss.str();
  const std::string begin = "<!-- counters: generated from topology/src/counters.cpp -->\n", end = "<!-- counters end -->";
  auto b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << "no counters section marker in " << path;
  ASSERT_NE(e, std::string::npos);
  b += begin.size();
  if (getenv("TOPOWALL_UPDATE_DOCS")) {
    doc.replace(b, e - b, counters_markdown());
    std::ofstream(path) << doc;
    return;
  }
  EXPECT_EQ(doc.substr(b, e - b), counters_markdown());
}
