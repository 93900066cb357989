// The nftables writer against the real kernel, with traffic between
// namespaces this test creates. Root only.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lab.hpp"
#include "nft/writer.hpp"

using namespace topowall;
using namespace topowall::testing;
using topology::AllowKey;

namespace {

struct WriterFixture : ::testing::Test {
  void SetUp() override {
    if (!is_root()) GTEST_SKIP() << "needs root: creates namespaces and nftables tables";
    table = "topowall_it" + std::to_string(getpid());
    lab = std::make_unique<Lab>("twiw", "10.231.2", std::vector<std::string>{"a", "b", "c"}, 2312);
    ASSERT_TRUE(lab->ok());
    ASSERT_TRUE(writer.open());
    model.cfg.table = table;
    auto ip = [](const std::string& s) { return *IpAddr::parse(s); };
    model.ep4 = {{ip(lab->ip("a")), 16}, {ip(lab->ip("b")), 17}, {ip(lab->ip("c")), 18}};
    model.ep6 = {{ip(lab->ip6("a")), 16}, {ip(lab->ip6("b")), 17}};
    model.net4 = topology::disjoint_intervals(AF_INET, {}, topology::kWorldId);
    model.net6 = topology::disjoint_intervals(AF_INET6, {}, topology::kWorldId);
    model.allow = {{16, 17, 6, 8080}, {16, 17, 1, 8}};
    model.enforced = {16, 17, 18};
    model.cfg.failsafe = {{6, 2222}};
  }
  void TearDown() override {
    if (!is_root()) return;
    sh("nft delete table inet " + table);
  }
  std::string table;
  std::unique_ptr<Lab> lab;
  nft::NftWriter writer;
  topology::RulesetModel model;
};

}  // namespace

TEST_F(WriterFixture, EnforcesEdgesBothFamiliesAndDirection) {
  Server b8080(lab->ns_path("b"), 8080), a8080(lab->ns_path("a"), 8080), b9090(lab->ns_path("b"), 9090),
      b2222(lab->ns_path("b"), 2222);
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->full);
  EXPECT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "allowed edge a->b tcp/8080";
  EXPECT_FALSE(tcp_connect(lab->ns_path("b"), lab->ip("a"), 8080)) << "the reverse is not allowed";
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 9090)) << "another port is not allowed";
  EXPECT_FALSE(tcp_connect(lab->ns_path("c"), lab->ip("b"), 8080)) << "another source is not allowed";
  EXPECT_TRUE(tcp_connect(lab->ns_path("c"), lab->ip("b"), 2222)) << "failsafe port";
  EXPECT_TRUE(ping(lab->ns("a"), lab->ip("b"))) << "icmp echo edge";
  EXPECT_FALSE(ping(lab->ns("b"), lab->ip("a")));
  // IPv6: same ids, so the v4 edge covers v6 too; the unknown reverse is blocked.
  EXPECT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip6("b"), 8080));
  EXPECT_FALSE(tcp_connect(lab->ns_path("b"), lab->ip6("a"), 8080));
}

TEST_F(WriterFixture, IncrementalChangesAreElementsOnlyAndLiveAtOnce) {
  Server a8080(lab->ns_path("a"), 8080);
  ASSERT_TRUE(writer.apply(model));
  EXPECT_FALSE(tcp_connect(lab->ns_path("b"), lab->ip("a"), 8080));
  model.allow.insert(AllowKey{17, 16, 6, 8080});
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->full);
  EXPECT_EQ(r->changes, 1u);
  EXPECT_TRUE(tcp_connect(lab->ns_path("b"), lab->ip("a"), 8080));
  // Monitor mode for a: alerts but passes.
  model.allow.erase(AllowKey{17, 16, 6, 8080});
  model.enforced = {};
  model.monitored = {16, 17};
  r = writer.apply(model);
  ASSERT_TRUE(r);
  EXPECT_TRUE(tcp_connect(lab->ns_path("b"), lab->ip("a"), 8080));
}

TEST_F(WriterFixture, ReusedAddressChangesOwnerAtomically) {
  Server b8080(lab->ns_path("b"), 8080);
  ASSERT_TRUE(writer.apply(model));
  EXPECT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  // b's address now belongs to workload 19: a's permission to 17 must not apply.
  model.ep4[*IpAddr::parse(lab->ip("b"))] = 19;
  model.enforced.insert(19);
  auto r = writer.apply(model);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->changes, 3u);  // delete old mapping, add new one, add 19 to enforced
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
}

TEST_F(WriterFixture, ARestartedWriterReconcilesWithoutRewriting) {
  ASSERT_TRUE(writer.apply(model));
  nft::NftWriter again;
  ASSERT_TRUE(again.open());
  auto r = again.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->full);
  EXPECT_TRUE(r->reconciled);
  EXPECT_EQ(r->changes, 0u);
  // Drift made by hand is repaired element by element.
  ASSERT_EQ(sh("nft delete element inet " + table + " enforced '{ 18 }'"), 0);
  nft::NftWriter third;
  ASSERT_TRUE(third.open());
  r = third.apply(model);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->full);
  EXPECT_EQ(r->changes, 1u);
  // A flushed chain means the structure is gone: rebuild.
  ASSERT_EQ(sh("nft flush chain inet " + table + " check"), 0);
  nft::NftWriter fourth;
  ASSERT_TRUE(fourth.open());
  r = fourth.apply(model);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->full);
}

TEST_F(WriterFixture, TableHasNoOwnerFlagAndTouchesNoOtherTable) {
  auto before = sh_out("nft list tables");
  ASSERT_TRUE(writer.apply(model));
  auto listing = sh_out("nft -j list table inet " + table);
  EXPECT_EQ(listing.find("\"owner\""), std::string::npos) << listing.substr(0, 300);
  auto after = sh_out("nft list tables");
  EXPECT_EQ(after.size(), before.size() + std::string("table inet " + table + "\n").size());
}

TEST_F(WriterFixture, LargeGraphAppliesInOneTransaction) {
  for (std::uint32_t i = 0; i < 20000; ++i) model.allow.insert(AllowKey{100 + i % 500, 100 + i / 40, 6, static_cast<std::uint16_t>(1 + i % 1000)});
  for (std::uint32_t i = 0; i < 5000; ++i) model.ep4[IpAddr::v4(0x0b000000 + i)] = 100 + i % 500;
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  auto got = writer.read_elements(table);
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["allow"].size(), model.allow.size());
  EXPECT_EQ((*got)["ep4"].size(), model.ep4.size());
}
