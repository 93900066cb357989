// The nftables writer against the real kernel, with traffic between
// namespaces this test creates. Root only.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "lab.hpp"
#include "nft/writer.hpp"

using namespace topowall;
using namespace topowall::testing;
using topology::AllowKey;

namespace {

struct WriterFixture : ::testing::Test {
  void SetUp() override {
    if (auto why = Lab::missing(); !why.empty()) GTEST_SKIP() << why;
    table = "topowall_it" + std::to_string(getpid());
    lab = std::make_unique<Lab>("twiw", "10.231.2", std::vector<std::string>{"a", "b", "c"}, 2312);
    ASSERT_TRUE(lab->ok());
    ASSERT_TRUE(writer.open());
    model.cfg.table = table;
    auto ip = [](const std::string& s) { return *IpAddr::parse(s); };
    model.ep4 = {{ip(lab->ip("a")), 16}, {ip(lab->ip("b")), 17}, {ip(lab->ip("c")), 18}};
    model.ep6 = {{ip(lab->ip6("a")), 16}, {ip(lab->ip6("b")), 17}};
    // Each address may be sent from its own host's port only (the guard).
    model.port4 = {{ip(lab->ip("a")), lab->port("a")}, {ip(lab->ip("b")), lab->port("b")}, {ip(lab->ip("c")), lab->port("c")}};
    model.port6 = {{ip(lab->ip6("a")), lab->port("a")}, {ip(lab->ip6("b")), lab->port("b")}};
    model.net4 = topology::disjoint_intervals(AF_INET, {}, topology::kWorldId);
    model.net6 = topology::disjoint_intervals(AF_INET6, {}, topology::kWorldId);
    model.allow = {{16, 17, 6, 8080}, {16, 17, 1, 8}};
    model.enforced = {16, 17, 18};
    model.cfg.failsafe = {{6, 2222}};
    model.ids = {1, 2, 16, 17, 18, 19};
  }
  void TearDown() override {
    if (!is_root()) return;
    drop_tables(table);
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
  // Failsafe ports protect the node, not containers: ssh to the host passes, to a container it does not.
  Server host2222("", 2222);
  EXPECT_TRUE(tcp_connect(lab->ns_path("c"), lab->gateway(), 2222)) << "failsafe port to the node";
  EXPECT_FALSE(tcp_connect(lab->ns_path("c"), lab->ip("b"), 2222)) << "failsafe port between containers";
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
  // ids4 changes owner (delete + add, one transaction); enforced4 is unchanged.
  EXPECT_EQ(r->changes, 2u);
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
  ASSERT_EQ(sh("nft delete element inet " + table + " enforced4 '{ " + lab->ip("c") + " }'"), 0);
  nft::NftWriter third;
  ASSERT_TRUE(third.open());
  r = third.apply(model);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->full);
  EXPECT_EQ(r->changes, 1u);
  // A chain flushed by hand is rebuilt, and only that chain.
  ASSERT_EQ(sh("nft flush chain inet " + table + " check"), 0);
  nft::NftWriter fourth;
  ASSERT_TRUE(fourth.open());
  r = fourth.apply(model);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->full);
  EXPECT_EQ(r->changes, 2u);  // the chain deleted and created again
  EXPECT_NE(sh_out("nft list chain inet " + table + " check").find("ct mark vmap @srcchain"), std::string::npos);
}

// The read-back behind the periodic check: another component's table changes nothing; any edit to our
// inet table or its bridge twin is seen.
TEST_F(WriterFixture, TheReadBackSeesEveryEditOfOursAndNoneOfOthers) {
  ASSERT_TRUE(writer.apply(model));
  auto intact = [&] {
    auto r = writer.intact(model);
    EXPECT_TRUE(r) << r.error().message;
    return r && *r;
  };
  EXPECT_TRUE(intact());
  const auto other = table + "x";
  ASSERT_EQ(sh("nft add table inet " + other + " && nft add chain inet " + other + " c"), 0);
  auto moved = writer.changed_since_commit();
  ASSERT_TRUE(moved);
  EXPECT_TRUE(*moved) << "the generation moves with anyone's change";
  EXPECT_TRUE(intact()) << "someone else's table is none of ours";
  writer.acknowledge();
  EXPECT_FALSE(*writer.changed_since_commit());
  sh("nft delete table inet " + other);
  ASSERT_EQ(sh("nft flush set bridge " + table + " gsrc4"), 0);
  EXPECT_FALSE(intact()) << "the bridge twin's source set emptied";
  writer.invalidate();  // as a repair does: the reconcile rebuilds the twin
  ASSERT_TRUE(writer.apply(model));
  EXPECT_TRUE(intact());
  ASSERT_EQ(sh("nft flush chain bridge " + table + " guard"), 0);
  EXPECT_FALSE(intact()) << "the bridge twin's guard chain flushed";
  writer.invalidate();
  ASSERT_TRUE(writer.apply(model));
  EXPECT_TRUE(intact());
  ASSERT_EQ(sh("nft delete element inet " + table + " enforced4 '{ " + lab->ip("c") + " }'"), 0);
  EXPECT_FALSE(intact()) << "an element deleted from our inet table";
  writer.invalidate();
  ASSERT_TRUE(writer.apply(model));
  ASSERT_EQ(sh("nft delete table inet " + table), 0);
  EXPECT_FALSE(intact()) << "our table deleted";
}

TEST_F(WriterFixture, TableHasNoOwnerFlagAndTouchesNoOtherTable) {
  auto before = sh_out("nft list tables");
  ASSERT_TRUE(writer.apply(model));
  auto listing = sh_out("nft -j list table inet " + table);
  EXPECT_EQ(listing.find("\"owner\""), std::string::npos) << listing.substr(0, 300);
  auto after = sh_out("nft list tables");
  // Ours, and the bridge-family twin of the guard: nothing else.
  EXPECT_EQ(after.size(), before.size() + std::string("table inet " + table + "\n").size() +
                              std::string("table bridge " + table + "\n").size());
}

TEST_F(WriterFixture, LargeGraphAppliesInOneTransaction) {
  for (std::uint32_t i = 100; i < 600; ++i) model.ids.insert(i);
  for (std::uint32_t i = 0; i < 20000; ++i) model.allow.insert(AllowKey{100 + i % 500, 100 + i / 40, 6, static_cast<std::uint16_t>(1 + i % 1000)});
  for (std::uint32_t i = 0; i < 5000; ++i) model.ep4[IpAddr::v4(0x0b000000 + i)] = 100 + i % 500;
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  auto got = writer.read_kernel(model);
  ASSERT_TRUE(got && *got);
  std::size_t allow = 0;
  for (const auto& [name, elems] : (*got)->elements)
    if (name.rfind("allow", 0) == 0) allow += elems.size();
  EXPECT_EQ(allow, model.allow.size());
  EXPECT_EQ((*got)->elements["eps4"].size(), model.ep4.size());
}

TEST_F(WriterFixture, NftReadsTheTableBackExactlyAsTheRenderedText) {
  ASSERT_TRUE(writer.apply(model));
  auto ours = sh_out("nft list table inet " + table);
  ASSERT_NE(ours.find("chain src_17"), std::string::npos) << ours;
  ASSERT_NE(ours.find("0x00100000 . 0x00000011 . tcp . 8080"), std::string::npos) << ours;
  // The same model loaded by nft itself from the rendered text.
  auto twin = model;
  twin.cfg.table = table + "x";
  auto path = "/tmp/" + twin.cfg.table + ".nft";
  FILE* f = fopen(path.c_str(), "w");
  fputs(topology::render_nft(twin).c_str(), f);
  fclose(f);
  ASSERT_EQ(sh("nft -f " + path), 0);
  auto theirs = sh_out("nft list table inet " + twin.cfg.table);
  auto ours_bridge = sh_out("nft list table bridge " + table), theirs_bridge = sh_out("nft list table bridge " + twin.cfg.table);
  drop_tables(twin.cfg.table);
  unlink(path.c_str());
  auto norm = [&](std::string s, const std::string& name) {
    for (auto p = s.find(name); p != std::string::npos; p = s.find(name)) s.replace(p, name.size(), "T");
    return s;
  };
  EXPECT_EQ(norm(ours, table), norm(theirs, twin.cfg.table));
  EXPECT_NE(ours_bridge.find("chain guard"), std::string::npos) << ours_bridge;
  EXPECT_EQ(norm(ours_bridge, table), norm(theirs_bridge, twin.cfg.table));
}

TEST_F(WriterFixture, WorldAndHostEndsUseTheNetworkMaps) {
  // 10.231.2.1 (the bridge) is the host; allow a -> host tcp/7070 only.
  model.net4 = topology::disjoint_intervals(AF_INET, {{*Cidr::parse(lab->gateway() + "/32"), topology::kHostId}},
                                            topology::kWorldId);
  model.allow.insert(AllowKey{16, topology::kHostId, 6, 7070});
  Server host7070("", 7070), host7071("", 7071);
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(tcp_connect(lab->ns_path("a"), lab->gateway(), 7070));
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->gateway(), 7071));
  EXPECT_FALSE(tcp_connect(lab->ns_path("b"), lab->gateway(), 7070));
}

TEST_F(WriterFixture, PatchesLeaveTheKernelExactlyAsAFullApplyWould) {
  Server b8080(lab->ns_path("b"), 8080);
  ASSERT_TRUE(writer.apply(model));
  // A new workload (id 20) with an endpoint, an edge to it, a moved address, a revoked edge.
  auto ip = [](const std::string& s) { return *IpAddr::parse(s); };
  model.ids.insert(20);
  model.ep4[ip("10.231.2.99")] = 20;
  model.enforced.insert(20);
  model.allow.insert(AllowKey{16, 20, 6, 443});
  model.ep4[ip(lab->ip("c"))] = 20;
  model.allow.erase(AllowKey{16, 17, 6, 8080});
  auto r = writer.apply_patch(model, {ip("10.231.2.99"), ip(lab->ip("c"))}, {AllowKey{16, 20, 6, 443}, AllowKey{16, 17, 6, 8080}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->full);
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080)) << "revoked by the patch";
  auto kernel = writer.read_kernel(model);
  ASSERT_TRUE(kernel && *kernel);
  auto want = nft::layout(model);
  for (const auto& [name, elems] : want.elements) EXPECT_EQ((*kernel)->elements[name], elems) << name;
}

// Regression: a host address appearing inside a range that already stands
// (podman creating a bridge) was refused by the kernel (EEXIST).
TEST_F(WriterFixture, ANewHostAddressInsideAnExistingRange) {
  auto c = [](const char* s) { return *Cidr::parse(s); };
  model.net4 = topology::disjoint_intervals(AF_INET, {{c("192.0.2.2/32"), topology::kHostId}}, topology::kWorldId);
  ASSERT_TRUE(writer.apply(model));
  model.net4 = topology::disjoint_intervals(AF_INET, {{c("192.0.2.2/32"), topology::kHostId}, {c("10.89.79.1/32"), topology::kHostId}},
                                            topology::kWorldId);
  auto r = writer.apply(model);
  ASSERT_TRUE(r) << r.error().message;
  auto kernel = writer.read_kernel(model);
  ASSERT_TRUE(kernel && *kernel);
  EXPECT_EQ((*kernel)->elements["srcnet4"], nft::layout(model).elements["srcnet4"]);
}

// Other components' marks: the packet mark's other bits pass through untouched
// and the conntrack mark we borrow as scratch is handed back zero; a conntrack
// mark someone else already set keeps its value and the flow is judged without
// dispatch (fails closed in enforce mode, counted).
TEST_F(WriterFixture, ForeignMarksSurviveAndATakenConntrackMarkFailsClosed) {
  Server b8080(lab->ns_path("b"), 8080), b8081(lab->ns_path("b"), 8081);
  model.allow.insert(AllowKey{16, 17, 6, 8081});
  ASSERT_TRUE(writer.apply(model));
  const std::string other = "twiw_other" + std::to_string(getpid());
  const std::string a = lab->ip("a");
  const std::string file = "/tmp/" + other + ".nft";
  std::ofstream(file) << ("table inet " + other + " {\n"
               " chain pre { type filter hook prerouting priority -150; ip saddr " + a + " meta mark set 0x00004000;"
               " tcp dport 8081 ct mark set 0x00000077; }\n"
               " chain obs { type filter hook forward priority 0;"
               " tcp dport 8080 meta mark 0x00004000 ct mark 0x00000000 counter;"
               " tcp dport 8080 counter; }\n}\n");
  ASSERT_EQ(sh("nft -f " + file), 0);
  std::remove(file.c_str());
  EXPECT_TRUE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8080));
  EXPECT_FALSE(tcp_connect(lab->ns_path("a"), lab->ip("b"), 8081)) << "a foreign ct mark must not open a flow";
  auto fwd = sh_out("nft list chain inet " + other + " obs");
  sh("nft delete table inet " + other);
  auto counts = [](const std::string& s) {
    std::vector<long> v;
    for (auto p = s.find("packets "); p != std::string::npos; p = s.find("packets ", p + 1))
      v.push_back(std::stol(s.substr(p + 8)));
    return v;
  };
  auto f = counts(fwd);
  ASSERT_EQ(f.size(), 2u) << fwd;
  EXPECT_GT(f[1], 0) << fwd;
  EXPECT_EQ(f[0], f[1]) << "every forwarded 8080 packet kept mark 0x4000 and ct mark 0:\n" << fwd;
  auto check = counts(sh_out("nft list chain inet " + table + " taken"));
  ASSERT_EQ(check.size(), 1u);
  EXPECT_GT(check[0], 0) << "the taken-scratch path is counted";
  EXPECT_EQ(writer.stats().ctmark_taken, static_cast<std::uint64_t>(check[0])) << "and reported by the agent";
}

// The guard: a port may send only from the addresses classified behind it. Each attack passes without the
// guard (checked by applying the same model with an empty guard: see the first block).
TEST_F(WriterFixture, SpoofedSourcesAreDroppedWhateverTheirDestination) {
  Server b53(lab->ns_path("b"), 5353, true), host53("", 5354, true);
  model.allow.insert({16, 17, 17, 5353});  // a -> b udp/5353
  model.allow.insert({16, topology::kWorldId, 17, 5354});
  // Without the guard, impersonation reaches b.
  auto open = model;
  open.cfg.guard = false;
  ASSERT_TRUE(writer.apply(open));
  ASSERT_TRUE(udp_send_from(lab->ns_path("c"), lab->ip("a"), lab->ip("b"), 5353));
  ASSERT_TRUE(eventually([&] { return b53.accepted() == 1; })) << "the attack works without the guard";

  ASSERT_TRUE(writer.apply(model));
  // c sends as a (a may reach b): dropped.
  ASSERT_TRUE(udp_send_from(lab->ns_path("c"), lab->ip("a"), lab->ip("b"), 5353));
  // a sends from an unassigned address of the subnet, and from an address outside every network, to the
  // host (not a workload: "not ours" to the main table): dropped.
  ASSERT_TRUE(udp_send_from(lab->ns_path("a"), "10.231.2.77", lab->gateway(), 5354));
  ASSERT_TRUE(udp_send_from(lab->ns_path("a"), "198.51.100.9", lab->gateway(), 5354));
  // a link-scope address added inside the namespace: dropped.
  ASSERT_EQ(sh("ip -n " + lab->ns("a") + " addr add 169.254.7.7/16 dev eth0 scope link"), 0);
  ASSERT_TRUE(udp_send_from(lab->ns_path("a"), "169.254.7.7", lab->gateway(), 5354));
  // Its own address still passes.
  ASSERT_TRUE(udp_send_from(lab->ns_path("a"), lab->ip("a"), lab->gateway(), 5354));
  ASSERT_TRUE(eventually([&] { return host53.accepted() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(b53.accepted(), 1) << "impersonation reached b";
  EXPECT_EQ(host53.accepted(), 1) << "a spoofed source reached the host";
  EXPECT_GE(counter(table, "alert_drop_spoof"), 4u);
}

// ARP spoofing: c claims a's IPv4 address in gratuitous ARP, so the node would send a's traffic to c.
// The guard's bridge twin drops ARP whose sender address is not the port's own.
TEST_F(WriterFixture, ForgedArpCannotRedirectANeighbour) {
  const auto a_ip = lab->ip("a");
  auto mac_of = [&](const std::string& host) {
    auto out = sh_out("ip -n " + lab->ns(host) + " -o link show eth0");
    auto at = out.find("link/ether ");
    return at == std::string::npos ? std::string() : out.substr(at + 11, 17);
  };
  auto node_sees = [&] {
    auto out = sh_out("ip neigh show " + a_ip + " dev twiwbr");
    auto at = out.find("lladdr ");
    return at == std::string::npos ? std::string() : out.substr(at + 7, 17);
  };
  // The node may ping a (its own connections are judged too), so it resolves a's address.
  model.allow.insert({topology::kWorldId, 16, 1, 8});  // this model names no host address: the node is world
  auto attack = [&] {
    sh("ip neigh flush dev twiwbr");
    sh("busybox ping -c1 -W1 " + a_ip);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the neighbour entry's locktime
    EXPECT_EQ(node_sees(), mac_of("a")) << "the node resolved a correctly first";
    // c takes a's address on its own interface (NET_ADMIN) and announces it.
    EXPECT_EQ(sh("ip -n " + lab->ns("c") + " addr add " + a_ip + "/32 dev eth0"), 0);
    sh("ip netns exec " + lab->ns("c") + " busybox arping -U -c 2 -w 2 -I eth0 -s " + a_ip + " " + a_ip);
    sh("ip -n " + lab->ns("c") + " addr del " + a_ip + "/32 dev eth0");
    return node_sees();
  };
  auto open = model;
  open.cfg.guard = false;
  ASSERT_TRUE(writer.apply(open));
  ASSERT_EQ(attack(), mac_of("c")) << "the attack works without the guard";
  ASSERT_TRUE(writer.apply(model));
  EXPECT_EQ(attack(), mac_of("a")) << "c redirected a's traffic to itself";
  EXPECT_GE(counter(table, "alert_drop_spoof"), 1u);
}

// The bridge twin's first rules are the guard's fast path, the one nearly every bridged packet leaves by: a
// port's own address (`iif . saddr`), before the kind compare. It must pass nothing but that: a neighbour's
// address sent from another port, in either family, still reaches the drop rules below it.
TEST_F(WriterFixture, TheGuardsFastPathPassesOnlyAPortsOwnAddress) {
  Server b53(lab->ns_path("b"), 5357, true);
  auto ip = [](const std::string& s) { return *IpAddr::parse(s); };
  model.ep6[ip(lab->ip6("c"))] = 18;
  model.port6[ip(lab->ip6("c"))] = lab->port("c");  // c's own IPv6 too, so its neighbour discovery works
  model.allow.insert({16, 17, 17, 5357});           // a -> b udp/5357
  model.allow.insert({18, 17, 17, 5357});           // c -> b udp/5357
  auto open = model;
  open.cfg.guard = false;
  ASSERT_TRUE(writer.apply(open));
  ASSERT_TRUE(udp_send_from(lab->ns_path("c"), lab->ip6("a"), lab->ip6("b"), 5357));
  ASSERT_TRUE(eventually([&] { return b53.accepted() == 1; })) << "the attack works without the guard";

  ASSERT_TRUE(writer.apply(model));
  auto chain = sh_out("nft list chain bridge " + table + " guard");
  const auto own4 = chain.find("iif . ip saddr @gsrc4 accept"), own6 = chain.find("iif . ip6 saddr @gsrc6 accept");
  EXPECT_NE(own4, std::string::npos) << chain;  // EXPECT: the traffic below is checked whatever the listing says
  EXPECT_LT(own4, own6) << chain;
  EXPECT_LT(own6, chain.find("meta iifkind != \"veth\" accept")) << "the own-address lookups lead the bridge twin:\n" << chain;
  // c, as a: dropped in both families; c and a from their own addresses: passed (so c's packets do leave it).
  for (const auto& [from, src] : {std::pair{"c", lab->ip6("a")}, std::pair{"c", lab->ip("a")}})
    ASSERT_TRUE(udp_send_from(lab->ns_path(from), src, src.find(':') == std::string::npos ? lab->ip("b") : lab->ip6("b"), 5357));
  ASSERT_TRUE(udp_send_from(lab->ns_path("c"), lab->ip6("c"), lab->ip6("b"), 5357));
  ASSERT_TRUE(udp_send_from(lab->ns_path("a"), lab->ip6("a"), lab->ip6("b"), 5357));
  ASSERT_TRUE(eventually([&] { return b53.accepted() >= 3; })) << "own addresses pass";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(b53.accepted(), 3) << "a forged source passed the guard's fast path";
  EXPECT_GE(counter(table, "alert_drop_spoof"), 2u);
}

TEST_F(WriterFixture, AnUnclassifiedPortCarriesNothingUnlessTheNodeLearns) {
  lab->add_host("d", "10.231.2.9");  // a new container the agent has not classified yet
  Server host53("", 5355, true);
  ASSERT_TRUE(writer.apply(model));  // learning: unclassified_drop off
  ASSERT_TRUE(udp_send_from(lab->ns_path("d"), "10.231.2.9", lab->gateway(), 5355));
  ASSERT_TRUE(eventually([&] { return host53.accepted() == 1; })) << "learning: it passes";
  // ... but not with an address the node knows to be another's.
  Server b53(lab->ns_path("b"), 5356, true);
  model.allow.insert({16, 17, 17, 5356});
  ASSERT_TRUE(writer.apply(model));
  ASSERT_TRUE(udp_send_from(lab->ns_path("d"), lab->ip("a"), lab->ip("b"), 5356));
  model.unclassified_drop = true;  // monitor or enforce
  ASSERT_TRUE(writer.apply(model));
  ASSERT_TRUE(udp_send_from(lab->ns_path("d"), "10.231.2.9", lab->gateway(), 5355));
  EXPECT_FALSE(tcp_connect(lab->ns_path("d"), lab->ip("b"), 8080));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(host53.accepted(), 1);
  EXPECT_EQ(b53.accepted(), 0);
  EXPECT_GE(counter(table, "alert_drop_unclassified"), 2u);
  // Classified: it passes again.
  model.port4[*IpAddr::parse("10.231.2.9")] = lab->port("d");
  ASSERT_TRUE(writer.apply(model));
  ASSERT_TRUE(udp_send_from(lab->ns_path("d"), "10.231.2.9", lab->gateway(), 5355));
  EXPECT_TRUE(eventually([&] { return host53.accepted() == 2; }));
}
