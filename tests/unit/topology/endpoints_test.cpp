#include <gtest/gtest.h>

#include "topowall/topology/endpoints.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
EndpointInfo ep(std::string id, std::vector<std::string> addrs) {
  EndpointInfo e;
  e.id = id;
  e.name = id;
  for (auto& a : addrs) e.addresses.push_back(*IpAddr::parse(a));
  return e;
}
IpAddr ip(const char* s) { return *IpAddr::parse(s); }
}  // namespace

TEST(Endpoints, ResolvesWorkloadHostExternalWorld) {
  EndpointTable t;
  t.upsert("web", ep("c1", {"10.0.0.2", "fd00::2"}));
  t.set_host_addresses({ip("192.0.2.1")});
  t.set_external_networks({{*Cidr::parse("203.0.113.0/24"), "partner"}, {*Cidr::parse("203.0.113.128/25"), "partner-db"}});
  EXPECT_EQ(t.resolve(ip("10.0.0.2")), "web");
  EXPECT_EQ(t.resolve(ip("fd00::2")), "web");
  EXPECT_EQ(t.resolve(ip("192.0.2.1")), "host");
  EXPECT_EQ(t.resolve(ip("203.0.113.5")), "partner");
  EXPECT_EQ(t.resolve(ip("203.0.113.200")), "partner-db");  // most specific first
  EXPECT_EQ(t.resolve(ip("8.8.8.8")), "world");
}

TEST(Endpoints, ReplicasShareAWorkload) {
  EndpointTable t;
  t.upsert("web", ep("c1", {"10.0.0.2"}));
  t.upsert("web", ep("c2", {"10.0.0.3"}));
  ASSERT_EQ(t.workloads().at("web").size(), 2u);
  t.remove("c1");
  EXPECT_EQ(t.workloads().at("web").size(), 1u);
  EXPECT_EQ(t.resolve(ip("10.0.0.2")), "world");
  t.remove("c2");
  EXPECT_FALSE(t.is_workload("web"));
}

TEST(Endpoints, ReusedAddressMovesToNewOwnerAtOnce) {
  EndpointTable t;
  t.upsert("db", ep("old", {"10.0.0.9"}));
  // The new container claims the address before the old one's removal arrives.
  auto changed = t.upsert("cache", ep("new", {"10.0.0.9"}));
  EXPECT_EQ(changed, std::vector<IpAddr>{ip("10.0.0.9")});
  EXPECT_EQ(t.resolve(ip("10.0.0.9")), "cache");
  // The late removal of the old owner must not take the address from the new one.
  t.remove("old");
  EXPECT_EQ(t.resolve(ip("10.0.0.9")), "cache");
  EXPECT_EQ(t.address_map().at(ip("10.0.0.9")), "cache");
}

TEST(Endpoints, AddressChangesAreReported) {
  EndpointTable t;
  t.upsert("web", ep("c1", {"10.0.0.2"}));
  auto changed = t.upsert("web", ep("c1", {"10.0.0.5"}));
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_EQ(t.resolve(ip("10.0.0.2")), "world");
  EXPECT_EQ(t.resolve(ip("10.0.0.5")), "web");
  // Relabelled: same address, new workload.
  changed = t.upsert("api", ep("c1", {"10.0.0.5"}));
  EXPECT_EQ(changed, std::vector<IpAddr>{ip("10.0.0.5")});
  EXPECT_EQ(t.resolve(ip("10.0.0.5")), "api");
  EXPECT_FALSE(t.is_workload("web"));
}
