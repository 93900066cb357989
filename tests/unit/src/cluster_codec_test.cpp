// What nodes write to etcd, and what a node accepts back: other writers' values must never be fatal
// and never name reserved or invalid workloads.
#include <gtest/gtest.h>

#include "cluster/etcd_store.hpp"

using namespace topowall;
using namespace topowall::cluster;

TEST(ClusterCodec, EndpointsRoundTrip) {
  ClusterEndpoint e{"node-a", "c1", "web", "web-1", {*IpAddr::parse("10.1.0.2"), *IpAddr::parse("fd00::2")}};
  auto back = decode_endpoint(encode_endpoint(e));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->node, "node-a");
  EXPECT_EQ(back->workload, "web");
  EXPECT_EQ(back->addresses, e.addresses);
}

TEST(ClusterCodec, OtherWritersValuesAreRefusedNotFatal) {
  for (const char* bad : {
           "not json", "[1]", R"({"node":"a","id":"1","workload":"web"})",
           R"({"node":"a","id":"1","workload":"web","addresses":["10.0.0.300"]})",
           R"({"node":"a","id":"1","workload":"we b","addresses":[]})",
           R"({"node":"a","id":"1","workload":"world","addresses":["10.0.0.1"]})",
           R"({"node":"a","id":"1","workload":"host","addresses":["10.0.0.1"]})",
           R"({"node":7,"id":"1","workload":"web","addresses":[]})",
           R"({"node":"a","id":"1","workload":"web","addresses":[7]})",
       }) {
    auto r = decode_endpoint(bad);
    EXPECT_FALSE(r) << bad;
  }
}

// A value nested 200,000 deep (well under etcd's 1.5 MiB request limit) killed every agent that read
// it, at every start: refused like any other bad value, and the refusal says why.
TEST(ClusterCodec, DeeplyNestedValuesAreRefusedNotFatal) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto e = decode_endpoint(R"({"node":"a","id":"1","workload":"web","addresses":[)" + deep + "]}");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("nested deeper than 64"), std::string::npos) << e.error().message;
  auto d = decode_decision(R"({"src":"web","dst":"db","proto":"tcp","port":1,"state":"approved","comment":)" + deep +
                           "}");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("nested deeper than 64"), std::string::npos) << d.error().message;
}

TEST(ClusterCodec, KeysAndPrefixes) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "/topowall/v1/endpoints/node-a/c1",
                                                      std::string("\xff\x00\x01", 3)})
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("/topowall/"), "L3RvcG93YWxsLw==");
  EXPECT_EQ(prefix_end("/topowall/"), "/topowall0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
}

TEST(ClusterCodec, DecisionsRoundTripAndBadOnesAreRefused) {
  ClusterDecision d{"web", "db", Proto::tcp, 5432, "approved", "2026-12-01T10:00:00.000Z", "ticket", "node-a"};
  auto back = decode_decision(encode_decision(d));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->dst, "db");
  EXPECT_EQ(back->proto, Proto::tcp);
  EXPECT_EQ(back->port, 5432);
  EXPECT_EQ(back->until, d.until);
  for (const char* bad : {
           R"({"src":"web","dst":"db","proto":"tcp","port":5432,"state":"maybe"})",
           R"({"src":"web","dst":"db","proto":"gre","port":5432,"state":"approved"})",
           R"({"src":"web","dst":"db","proto":"tcp","port":70000,"state":"approved"})",
           R"({"src":"w b","dst":"db","proto":"tcp","port":1,"state":"approved"})",
           R"({"src":"web","dst":"db","proto":"tcp","port":1,"state":"approved","until":"soon"})",
           R"({"src":"web","dst":"db","proto":"tcp","port":"1","state":"approved"})",
       })
    EXPECT_FALSE(decode_decision(bad)) << bad;
}

TEST(ClusterCodec, RangesRoundTripAndRefuseJunk) {
  auto back = decode_ranges(encode_ranges("node-a", {*Cidr::parse("10.1.0.0/16"), *Cidr::parse("fd00:1::/64")}));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->node, "node-a");
  EXPECT_EQ(back->ranges.size(), 2u);
  for (const char* bad : {R"({"node":"a b","ranges":[]})", R"({"node":"n","ranges":["10.0.0.0/33"]})",
                          R"({"node":"n","ranges":"10.0.0.0/8"})", R"({"node":"n","ranges":[7]})", "[]", "{"})
    EXPECT_FALSE(decode_ranges(bad)) << bad;
}

// The first announcement of an address range wins; a later overlapping one is refused (and reported
// once), and stands once the first is gone.
TEST(NodeRanges, TheFirstAnnouncementWinsAnOverlap) {
  NodeRanges r;
  r.set("node-b", {*Cidr::parse("10.1.5.0/24"), *Cidr::parse("10.2.0.0/16")}, 20);
  r.set("node-a", {*Cidr::parse("10.1.0.0/16")}, 10);
  r.set("node-c", {*Cidr::parse("fd00::/64")}, 30);
  auto refused = r.settle();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].node, "node-b");
  EXPECT_EQ(refused[0].owner, "node-a");
  EXPECT_EQ(refused[0].range.to_string(), "10.1.5.0/24");
  EXPECT_TRUE(r.allows("node-a", *IpAddr::parse("10.1.5.5")));
  EXPECT_FALSE(r.allows("node-b", *IpAddr::parse("10.1.5.5")));
  EXPECT_TRUE(r.allows("node-b", *IpAddr::parse("10.2.0.9")));
  EXPECT_TRUE(r.allows("node-c", *IpAddr::parse("fd00::9")));
  EXPECT_FALSE(r.allows("node-c", *IpAddr::parse("10.2.0.9")));
  EXPECT_FALSE(r.allows("node-x", *IpAddr::parse("10.2.0.9"))) << "a node without ranges claims nothing";
  EXPECT_TRUE(r.settle().empty()) << "reported once";
  r.erase("node-a");
  EXPECT_TRUE(r.settle().empty());
  EXPECT_TRUE(r.allows("node-b", *IpAddr::parse("10.1.5.5")));
  EXPECT_TRUE(overlaps(*Cidr::parse("10.0.0.0/8"), *Cidr::parse("10.1.2.3/32")));
  EXPECT_FALSE(overlaps(*Cidr::parse("10.0.0.0/8"), *Cidr::parse("11.0.0.0/8")));
}

// Namespaced workloads travel between nodes whole; ranges and nodes keep plain names.
TEST(ClusterCodec, NamespacedWorkloadsRoundTripNodesStayPlain) {
  ClusterEndpoint e{"node-a", "c1", "shop/web", "web-5d9c8f7b6-x2k4q", {*IpAddr::parse("10.1.0.2")}};
  auto back = decode_endpoint(encode_endpoint(e));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->workload, "shop/web");
  for (const char* bad : {"shop/web/x", "Shop/web", "/web", "shop/"}) {
    e.workload = bad;
    EXPECT_FALSE(decode_endpoint(encode_endpoint(e))) << bad;
  }
  EXPECT_FALSE(decode_ranges(R"({"node":"shop/node-a","ranges":[]})")) << "a node name never has a namespace";
}

// A '/' in a workload name is also the key's separator: `a/b -> c` and `a -> b/c` must not share a key
// (one decision would overwrite the other in etcd); plain names keep the keys they always had.
TEST(ClusterCodec, DecisionKeysOfNamespacedNamesNeverCollide) {
  ClusterDecision one{"shop/web", "db", Proto::tcp, 80, "approved", "", "", "n1"};
  ClusterDecision two{"shop", "web/db", Proto::tcp, 80, "denied", "", "", "n1"};
  EXPECT_NE(decision_key("/topowall/", one), decision_key("/topowall/", two));
  EXPECT_EQ(decision_key("/topowall/", one), "/topowall/decisions/shop%2Fweb/db/tcp/80");
  ClusterDecision plain{"web", "db", Proto::udp, 53, "approved", "", "", "n1"};
  EXPECT_EQ(decision_key("/topowall/", plain), "/topowall/decisions/web/db/udp/53");
}
