// The conntrack event filter on the real kernel, through the whole agent: connections an edge allows while an
// end is enforced carry no events bit, and the kernel drops their events before they reach the agent; a
// learning pair's connections keep theirs, allowed by an edge or not. Root only.
#include <gtest/gtest.h>
#include <linux/netlink.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent_lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {
std::uint64_t edge_count(const agent::Agent& a, const topology::EdgeKey& k) {
  const auto e = a.state().graph.find(k);
  return e ? e->count : 0;
}
}  // namespace

TEST_F(AgentLab, EnforcedConnectionsOnAnEdgeSendNoEventsLearningOnesDo) {
  start_agent();
  Server b8080(lab->ns_path("b"), 8080);
  Server a9090(lab->ns_path("a"), 9090);
  const topology::EdgeKey enforced{"twia-a", "twia-b", Proto::tcp, 8080};
  const topology::EdgeKey learning{"twia-c", "twia-a", Proto::tcp, 9090};
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  ASSERT_TRUE(pump_until([&] { return edge_count(*agent, enforced) >= 1; })) << "learnt while b learned";
  ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}, {"workload", "twia-b"}})["ok"]);
  pump(100);

  auto counters = [&] { return call("status")["result"]["counters"]; };
  EXPECT_EQ(counters()["conntrack_filter_failed"], 0) << "the filter is attached";
  const auto count_before = edge_count(*agent, enforced);
  const auto messages_before = counters()["conntrack_messages"].get<std::uint64_t>();
  constexpr int kConnections = 20;
  for (int i = 0; i < kConnections; ++i)
    ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "the edge allows a -> b while b enforces";
  // Then a learning pair (a and c learn): events come in order, so once this one is learnt, any event of the
  // connections above has been read too.
  ASSERT_TRUE(tcp_connect(lab->ns_path("c"), lab->ip("a"), 9090));
  ASSERT_TRUE(pump_until([&] { return edge_count(*agent, learning) >= 1; })) << "a learning flow's events arrive";
  EXPECT_EQ(edge_count(*agent, enforced), count_before) << "an enforced pair's connection reached the agent";
  const auto messages = counters()["conntrack_messages"].get<std::uint64_t>() - messages_before;
  EXPECT_LT(messages, static_cast<std::uint64_t>(kConnections)) << "each enforced connection sends at least one event";

  // A learning pair on an edge it has: still seen (the learner counts it).
  const auto learnt = edge_count(*agent, learning);
  ASSERT_TRUE(tcp_connect(lab->ns_path("c"), lab->ip("a"), 9090));
  EXPECT_TRUE(pump_until([&] { return edge_count(*agent, learning) > learnt; })) << "a learning edge's use is seen";
}

namespace {
// The conntrack event groups (NEW, UPDATE, DESTROY: bits 0-2) joined by any NETLINK_NETFILTER socket of this
// process, which runs the agent: the Groups column of /proc/net/netlink for our sockets' inodes.
unsigned conntrack_groups_of_this_process() {
  std::set<unsigned long> inodes;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(std::stoul(target.substr(8)));
  }
  std::ifstream in("/proc/net/netlink");
  std::string line;
  std::getline(in, line);  // header: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  unsigned groups = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sk, groups_hex, skip;
    int eth = 0;
    unsigned long inode = 0;
    f >> sk >> eth >> skip >> groups_hex >> skip >> skip >> skip >> skip >> skip >> inode;
    if (eth == NETLINK_NETFILTER && inodes.count(inode)) groups |= std::stoul(groups_hex, nullptr, 16) & 0x7u;
  }
  return groups;
}
}  // namespace

// Issue 16 item 1: with everything enforced the agent leaves the conntrack event groups, so the kernel builds
// no event for any connection (a filter only drops them after they are built); one workload back in learn
// mode joins them again and its new flows are learned.
TEST_F(AgentLab, EnforcingEverythingLeavesTheConntrackEventGroups) {
  start_agent();
  Server b8080(lab->ns_path("b"), 8080);
  EXPECT_EQ(conntrack_groups_of_this_process(), 0x7u) << "learning: subscribed to new, update, destroy";
  ASSERT_TRUE(call("mode.set", {{"mode", "enforce"}})["ok"]);
  pump(100);
  EXPECT_EQ(conntrack_groups_of_this_process(), 0u) << "everything enforces: no conntrack group";
  EXPECT_EQ(call("status")["result"]["conntrack_events"], "paused");
  const auto messages = call("status")["result"]["counters"]["conntrack_messages"].get<std::uint64_t>();
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "no edge: enforced";
  pump(100);
  EXPECT_EQ(call("status")["result"]["counters"]["conntrack_messages"].get<std::uint64_t>(), messages);

  for (const char* w : {"twia-a", "twia-b"})
    ASSERT_TRUE(call("mode.set", {{"mode", "learn"}, {"workload", w}})["ok"]);
  pump(100);
  EXPECT_EQ(conntrack_groups_of_this_process(), 0x7u) << "a workload learns: subscribed again";
  EXPECT_EQ(call("status")["result"]["conntrack_events"], "subscribed");
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  EXPECT_TRUE(pump_until([&] { return lab_edges().count("twia-a -> twia-b tcp/8080") == 1; })) << "its new flow is learned";
}
