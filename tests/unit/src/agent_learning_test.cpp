// The agent's learning path with fakes (issue 15): conntrack's phases reach the learner, a scan raises an
// alert naming its workload through the sinks, and status, workloads and flows pending show it.
#include <gtest/gtest.h>

#include "agent/agent.hpp"
#include "fakes.hpp"

using namespace topowall;
using nlohmann::json;
using fakes::container;
using fakes::tcp;

namespace {
struct Learning : ::testing::Test {
  Learning() {
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {container("w1", "web", {"10.0.0.2"}), container("a1", "api", {"10.0.0.4"})};
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    flows = fl.get();
    ad.runtime = std::move(rt);
    ad.flows = std::move(fl);
    ad.store = std::make_unique<store::MemoryStateStore>();
    ad.sinks.push_back(std::make_unique<fakes::FakeSink>(&alerts));
  }
  json call(agent::Agent& a, const std::string& method) {
    control::Peer p;
    p.uid = 0;
    p.may_write = true;
    return a.handle({{"v", 1}, {"method", method}, {"params", json::object()}}, p, nullptr)["result"];
  }
  static FlowTuple with(FlowTuple f, FlowPhase p) {
    f.phase = p;
    return f;
  }
  boost::asio::io_context io;
  agent::Adapters ad;
  fakes::FakeFlowSource* flows;
  std::vector<topology::Alert> alerts;
};
}  // namespace

TEST_F(Learning, AScanIsQuarantinedAlertedAndShownWhileRealEdgesAreLearned) {
  agent::AgentConfig cfg;
  cfg.learn.fanout_limit = 10;
  agent::Agent a(io, cfg, std::move(ad));
  ASSERT_TRUE(a.start());
  flows->emit(with(tcp("10.0.0.2", "10.0.0.4", 8080), FlowPhase::attempt));
  EXPECT_TRUE(a.state().graph.edges().empty()) << "a SYN is not a conversation";
  flows->emit(with(tcp("10.0.0.2", "10.0.0.4", 8080), FlowPhase::answered));
  ASSERT_EQ(a.state().graph.edges().size(), 1u);
  for (std::uint16_t p = 1; p <= 30; ++p) {
    flows->emit(with(tcp("10.0.0.2", "10.0.0.4", p), FlowPhase::attempt));
    flows->emit(with(tcp("10.0.0.2", "10.0.0.4", p), FlowPhase::refused));
  }
  flows->emit(with(tcp("10.0.0.2", "10.0.0.4", 9000), FlowPhase::answered));  // the open port it found
  EXPECT_EQ(a.state().graph.edges().size(), 1u) << "nothing beyond the real edge";
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].edge.src, "web");
  EXPECT_EQ(alerts[0].reason, "scan");
  EXPECT_TRUE(alerts[0].held);
  EXPECT_NE(topology::alert_text(alerts[0]).find("HELD web"), std::string::npos) << topology::alert_text(alerts[0]);
  const auto pending = call(a, "flows.pending");
  ASSERT_EQ(pending.size(), 1u) << pending.dump();
  EXPECT_EQ(pending[0]["port"], 9000);
  EXPECT_EQ(pending[0]["reason"], "scan");
  const auto st = call(a, "status");
  const auto web = st["learning"]["coverage"]["web"];
  EXPECT_EQ(web["verdict"], "quarantined") << web.dump();
  EXPECT_EQ(web["quarantine"], "scan");
  EXPECT_EQ(web["refused"], 30);
  EXPECT_EQ(web["held"], 1);
  EXPECT_EQ(web["peers"], 1);
  EXPECT_FALSE(web.contains("new_edge_curve")) << "status stays short";
  EXPECT_EQ(st["counters"]["flows_refused"], 30);
  EXPECT_EQ(st["counters"]["learn_quarantines"], 1);
  for (const auto& w : call(a, "workloads"))
    if (w["name"] == "web") {
      EXPECT_EQ(w["learning"]["verdict"], "quarantined");
      EXPECT_EQ(w["learning"]["new_edge_curve"]["counts"].size(), 30u);
    }
}
