// Conntrack events only while something learns (issue 16 item 1), with fakes: the agent leaves the event
// groups when every workload enforces and joins them again as soon as one learns or is monitored.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "agent/agent.hpp"
#include "fakes.hpp"

using namespace topowall;
using nlohmann::json;

namespace {
using fakes::container;
using fakes::tcp;

struct Events : ::testing::Test {
  void start(Mode initial) {
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {container("w1", "web", {"10.0.0.2"}), container("a1", "api", {"10.0.0.4"})};
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    flows = fl.get();
    flows->fail_subscribe = fail_subscribe;
    agent::Adapters ad;
    ad.runtime = std::move(rt);
    ad.flows = std::move(fl);
    ad.writer = std::make_unique<fakes::FakeWriter>();
    ad.store = std::make_unique<store::MemoryStateStore>();
    agent::AgentConfig cfg;
    cfg.initial_mode = initial;
    a = std::make_unique<agent::Agent>(io, cfg, std::move(ad));
    ASSERT_TRUE(a->start());
    EXPECT_TRUE(flows->subscribed) << "subscribed from the start, before the first apply";
    io.poll();
  }
  json call(const std::string& method, json params = json::object()) {
    control::Peer root;
    root.may_write = true;
    return a->handle({{"v", 1}, {"method", method}, {"params", params}}, root, nullptr);
  }
  std::string shown() { return call("status")["result"].value("conntrack_events", "absent"); }
  boost::asio::io_context io;
  fakes::FakeFlowSource* flows = nullptr;
  bool fail_subscribe = false;
  std::unique_ptr<agent::Agent> a;
};
}  // namespace

TEST_F(Events, SubscribedOnlyWhileAWorkloadLearnsOrIsMonitored) {
  start(Mode::learn);
  EXPECT_TRUE(flows->subscribed);
  EXPECT_EQ(shown(), "subscribed");

  ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}})["ok"]);
  EXPECT_FALSE(flows->subscribed) << "every workload enforces: nothing needs events";
  EXPECT_EQ(shown(), "paused");

  ASSERT_TRUE(call("mode.set", {{"mode", "learn"}, {"workload", "api"}})["ok"]);
  EXPECT_TRUE(flows->subscribed) << "api learns again";
  EXPECT_EQ(shown(), "subscribed");
  ASSERT_TRUE(call("mode.set", {{"mode", "learn"}, {"workload", "web"}})["ok"]);  // the stricter end decides
  flows->emit(tcp("10.0.0.2", "10.0.0.4", 8080));
  EXPECT_TRUE(a->state().graph.find({"web", "api", Proto::tcp, 8080})) << "its new flow is learned";

  for (const char* w : {"web", "api"}) ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}, {"workload", w}})["ok"]);
  EXPECT_FALSE(flows->subscribed);
  // A monitored workload's flows outside the graph become pending edges from their events (alert_pass).
  ASSERT_TRUE(call("mode.set", {{"mode", "monitor"}, {"workload", "web"}})["ok"]);
  EXPECT_TRUE(flows->subscribed) << "monitor needs the events of flows outside the graph";
}

TEST_F(Events, AnAgentStartedEnforcingPausesAfterItsFirstApply) {
  start(Mode::enforce);
  EXPECT_FALSE(flows->subscribed);
  EXPECT_EQ(shown(), "paused");
}

TEST_F(Events, AFailedLeaveStaysSubscribedAndIsCounted) {
  fail_subscribe = true;
  start(Mode::enforce);
  EXPECT_TRUE(flows->subscribed) << "fail safe for learning";
  EXPECT_EQ(shown(), "subscribed");
  EXPECT_GE(call("status")["result"]["counters"]["conntrack_subscribe_failed"].get<int>(), 1);
}
