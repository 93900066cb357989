// Learning on the real kernel trusts only conversations (issue 15): an unanswered SYN, a SYN refused
// with a reset and a datagram to a closed UDP port teach nothing; answered TCP and UDP do. Root only.
#include <gtest/gtest.h>

#include "agent_lab.hpp"

using namespace topowall;
using namespace topowall::testing;
using nlohmann::json;

TEST_F(AgentLab, OnlyAnsweredConnectionsAreLearned) {
  start_agent();  // learning
  Server b8080(lab->ns_path("b"), 8080), b5353(lab->ns_path("b"), 5353, true);  // the UDP server answers
  // b silently drops SYNs to 9191 (a filtered port: no answer at all).
  ASSERT_EQ(sh("ip netns exec " + lab->ns("b") +
               " nft 'add table inet twlt; add chain inet twlt in { type filter hook input priority 0; };"
               " add rule inet twlt in tcp dport 9191 drop'"),
            0);
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 9191, 300)) << "unanswered SYN";
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 9292)) << "refused with a reset";
  ASSERT_TRUE(udp_send(lab->ns_path("a"), lab->ip("b"), 5999));  // closed UDP port: no answer
  ASSERT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  ASSERT_TRUE(udp_send(lab->ns_path("a"), lab->ip("b"), 5353));
  const std::set<std::string> expected{"twia-a -> twia-b tcp/8080", "twia-a -> twia-b udp/5353"};
  ASSERT_TRUE(pump_until([&] { return lab_edges() == expected; })) << lab_edges().size() << " edges";
  pump(500);  // and nothing more arrives
  EXPECT_EQ(lab_edges(), expected);
  EXPECT_EQ(call("flows.pending")["result"].size(), 0u);
  // Ending the waiting entries (as their timeouts would) reports them: counted per workload, never learned.
  // The kernel deletes a connection refused by a reset before it marks the reply seen, so the reset is
  // counted with the unanswered: the dropped SYN, the reset and the closed UDP port make three.
  auto net = *Cidr::parse("10.231.3.0/24");
  ASSERT_TRUE(conntrack::delete_conntrack([&](const FlowTuple& f) { return net.contains(f.src); }));
  json cov;
  ASSERT_TRUE(pump_until([&] {
    cov = call("status")["result"]["learning"]["coverage"]["twia-a"];
    return cov.value("unanswered", 0) >= 3;
  })) << cov.dump();
  EXPECT_EQ(cov["peers"], 1);
  EXPECT_EQ(cov["verdict"], "learning");
  EXPECT_EQ(lab_edges(), expected);
}
