// The whole agent on the real kernel, as users run it: named namespaces as workloads, real conntrack
// events, real nftables, real NFLOG. Root only; a test skips with the reason when the machine lacks a
// piece (see Lab::missing).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include "agent/agent.hpp"
#include "conntrack/ct_listener.hpp"
#include "fakes.hpp"
#include "lab.hpp"
#include "netns/netns_watcher.hpp"
#include "nflog/nflog.hpp"
#include "nft/monitor.hpp"
#include "nft/writer.hpp"
#include "rtnl/address_watcher.hpp"

namespace topowall::testing {

using nlohmann::json;

struct AgentLab : ::testing::Test {
  void SetUp() override {
    if (auto why = Lab::missing(); !why.empty()) GTEST_SKIP() << why;
    table = "topowall_ita" + std::to_string(getpid());
    lab = std::make_unique<Lab>("twia", "10.231.3", std::vector<std::string>{"a", "b", "c"}, 2313);
    ASSERT_TRUE(lab->ok());
    // Connections of earlier tests on these addresses linger in conntrack
    // (TIME_WAIT): the agent's start-up dump would learn them.
    auto net = *Cidr::parse("10.231.3.0/24");
    auto cleared = conntrack::delete_conntrack([&](const FlowTuple& f) { return net.contains(f.src) || net.contains(f.dst); });
    ASSERT_TRUE(cleared) << cleared.error().message;
    store = std::make_unique<store::MemoryStateStore>();
  }
  void TearDown() override {
    agent.reset();
    if (is_root()) drop_tables(table);
  }
  // A fresh agent (as after a restart) sharing the persisted state.
  // The ruleset is what makes the kernel track the lab's connections (a namespace tracks only while a
  // rule there uses conntrack), so traffic starts once it is in the kernel, as it would on a node.
  void start_agent(conntrack::CtListenerOptions ct = {}) {
    agent.reset();
    agent::AgentConfig cfg;
    cfg.ruleset.table = table;
    cfg.ruleset.nflog_group = static_cast<std::uint16_t>(5200 + getpid() % 100);
    cfg.settle = std::chrono::milliseconds(200);
    cfg.journal_path = journal_path;
    cfg.ruleset_check = ruleset_check;
    cfg.edge_use_every = std::chrono::milliseconds(300);  // edge use from kernel counters, read often here
    agent::Adapters ad;
    auto st = std::make_unique<store::MemoryStateStore>();
    st->doc = store->doc;
    saved = st.get();
    ad.store = std::move(st);
    ad.netns = std::make_unique<netns::NetnsWatcher>(io, netns::NetnsOptions{"/run/netns", "", "twia-"});
    ct.event_mark = topology::event_mark(cfg.ruleset.mark_mask);  // as topowalld runs it
    ad.flows = std::make_unique<conntrack::CtListener>(io, ct);
    ad.addresses = std::make_unique<rtnl::RtnlAddressWatcher>(io);
    auto w = std::make_unique<nft::NftWriter>();
    ASSERT_TRUE(w->open());
    ad.writer = std::move(w);
    ad.ruleset_watch = std::make_unique<nft::NftMonitor>(io, table, monitor_rcvbuf);
    ad.alerts = std::make_unique<nflog::NflogListener>(io, cfg.ruleset.nflog_group);
    ad.conntrack_delete = conntrack::delete_conntrack;
    ad.sinks.push_back(std::make_unique<fakes::FakeSink>(&alerts));
    agent = std::make_unique<agent::Agent>(io, cfg, std::move(ad));
    auto s = agent->start();
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE(pump_until([&] { return call("status")["result"]["counters"]["ruleset_applies"].get<int>() >= 1; }))
        << "the ruleset never reached the kernel";
    pump(100);
  }
  // The usual start: a -> b tcp/8080 learned (a server on b:8080 must be up), then enforce.
  void learn_a_to_b_then_enforce() {
    ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
    ASSERT_TRUE(pump_until([&] { return lab_edges().count("twia-a -> twia-b tcp/8080") == 1; }));
    ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}})["ok"]);
  }
  void pump(int ms) {
    io.restart();
    io.run_for(std::chrono::milliseconds(ms));
  }
  // The agent's inputs are asynchronous (conntrack events, NFLOG): run the loop until `pred` holds, up to
  // `ms`, rather than guess a duration a slow (or sanitized) build might exceed.
  template <class Pred>
  bool pump_until(Pred pred, int ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      pump(25);
      agent->flush_deferred();
      if (pred()) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }
  json call(const std::string& method, json params = json::object()) {
    control::Peer root;
    root.may_write = true;
    return agent->handle({{"v", 1}, {"method", method}, {"params", params}}, root, nullptr);
  }
  std::set<std::string> lab_edges() {
    std::set<std::string> out;
    for (const auto& [k, e] : agent->state().graph.edges())
      if (k.src.rfind("twia-", 0) == 0 || k.dst.rfind("twia-", 0) == 0) out.insert(k.to_string());
    return out;
  }
  void persist() {
    ASSERT_TRUE(agent->persist());
    store->doc = saved->doc;
  }

  boost::asio::io_context io;
  std::string table;
  std::unique_ptr<Lab> lab;
  std::unique_ptr<store::MemoryStateStore> store;
  store::MemoryStateStore* saved = nullptr;
  std::unique_ptr<agent::Agent> agent;
  std::vector<topology::Alert> alerts;
  std::string journal_path;  // "" no flow journal
  std::chrono::milliseconds ruleset_check{10000};  // the agent's generation check (lost notices)
  int monitor_rcvbuf = nft::NftMonitor::kDefaultRcvbuf;  // the change monitor's receive buffer, bytes
};


}  // namespace topowall::testing
