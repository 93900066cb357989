// The endpoint registry alone: merge rules of raw discovery records.
#include <gtest/gtest.h>

#include "agent/endpoint_registry.hpp"
#include "fakes.hpp"

using namespace topowall;
using fakes::container;
using fakes::ip;
using Src = agent::EndpointRegistry::Source;

namespace {
struct Registry : ::testing::Test {
  Registry() : reg(table, identity, &watcher, nullptr) {
    agent::RegistryHooks h;
    h.changed = [this](const std::vector<IpAddr>& a) { changed.insert(changed.end(), a.begin(), a.end()); };
    reg.set_hooks(std::move(h));
  }
  DiscoveryEvent up(EndpointInfo e) { return DiscoveryEvent{DiscoveryEvent::Kind::upsert, std::move(e), {}}; }
  topology::EndpointTable table;
  topology::IdentityConfig identity;
  fakes::FakeAddressWatcher watcher;
  agent::EndpointRegistry reg;
  std::vector<IpAddr> changed;
};
}  // namespace

TEST_F(Registry, ANamespaceCannotTakeAnAddressTheRuntimeGaveAnother) {
  auto web = container("w1", "web", {"10.0.0.2"});
  web.netns_path = "/proc/self/ns/net";
  auto evil = container("e1", "evil", {"10.0.0.9"});
  evil.netns_path = "/proc/1/ns/mnt";  // any path: the watcher is a fake
  reg.on_discovery(up(web), Src::runtime);
  reg.on_discovery(up(evil), Src::runtime);
  watcher.set("e1", {ip("10.0.0.9"), ip("10.0.0.2"), ip("10.0.0.77")});
  EXPECT_EQ(table.resolve(ip("10.0.0.2")), "web") << "the runtime's word wins";
  EXPECT_EQ(table.resolve(ip("10.0.0.77")), "evil") << "an address nobody was given may be added";
  EXPECT_EQ(reg.counters().claims_refused, 1u);
  watcher.set("e1", {ip("10.0.0.9"), ip("10.0.0.2")});
  EXPECT_EQ(reg.counters().claims_refused, 1u) << "counted once per claim";
}

// The claims already logged are the container's: a container that stops forgets them (a removed
// container's claims were kept for ever, one entry per container and address), and one that starts
// again (podman keeps its id) and claims again is counted again.
TEST_F(Registry, AClaimIsCountedAgainAfterItsContainerRestarted) {
  reg.on_discovery(up(container("w1", "web", {"10.0.0.2"})), Src::runtime);
  auto evil = container("e1", "evil", {"10.0.0.9"});
  evil.netns_path = "/proc/1/ns/mnt";  // any path: the watcher is a fake
  for (int start = 1; start <= 2; ++start) {
    reg.on_discovery(up(evil), Src::runtime);
    watcher.set("e1", {ip("10.0.0.9"), ip("10.0.0.2")});
    EXPECT_EQ(reg.counters().claims_refused, static_cast<std::uint64_t>(start)) << "start " << start;
    EXPECT_EQ(table.resolve(ip("10.0.0.2")), "web");
    reg.on_discovery(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, "e1"}, Src::runtime);
  }
}

TEST_F(Registry, OtherNodesNeverMoveALocalAddress) {
  reg.on_discovery(up(container("a1", "api", {"10.0.0.4"})), Src::runtime);
  ClusterEvent ev;
  ev.kind = ClusterEvent::Kind::upsert;
  ev.endpoint = {"node-b", "x1", "intruder", "x", {ip("10.0.0.4"), ip("10.9.0.1")}};
  reg.on_cluster(ev);
  EXPECT_EQ(table.resolve(ip("10.0.0.4")), "api");
  EXPECT_EQ(table.resolve(ip("10.9.0.1")), "intruder");
  reg.on_discovery(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, "a1"}, Src::runtime);
  EXPECT_EQ(table.resolve(ip("10.0.0.4")), "intruder") << "the claim stands once the local owner is gone";
  EXPECT_EQ(reg.remote_count(), 1u);
}

TEST_F(Registry, SyncedOnlyOnceEveryExpectedSourceListed) {
  reg.expect(Src::runtime);
  reg.expect(Src::netns);
  EXPECT_FALSE(reg.synced());
  reg.on_discovery(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}}, Src::runtime);
  EXPECT_FALSE(reg.synced());
  reg.on_discovery(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}}, Src::netns);
  EXPECT_TRUE(reg.synced());
}

// Pods with the same app label in two namespaces are two workloads, each owning its own address; a
// label naming another namespace stays in the pod's own.
TEST_F(Registry, PodsAreNamespaceScopedWorkloads) {
  auto pod = [](const char* id, const char* ns, const char* app, const char* addr) {
    auto p = container(id, std::string(app) + "-x2k4q", {addr});
    p.labels = {{"app", app}};
    p.pod_namespace = ns;
    return p;
  };
  reg.on_discovery(up(pod("p1", "shop", "web", "10.0.0.2")), Src::runtime);
  reg.on_discovery(up(pod("p2", "tenant-a", "web", "10.0.0.3")), Src::runtime);
  reg.on_discovery(up(pod("p3", "tenant-a", "shop/web", "10.0.0.4")), Src::runtime);
  EXPECT_EQ(table.resolve(ip("10.0.0.2")), "shop/web");
  EXPECT_EQ(table.resolve(ip("10.0.0.3")), "tenant-a/web");
  EXPECT_EQ(table.resolve(ip("10.0.0.4")), "tenant-a/shop-web");
}
