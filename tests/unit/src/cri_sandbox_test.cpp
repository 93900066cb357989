// CRI pod sandboxes to endpoints: recorded verbose status answers, and the diff of listings into discovery
// events (what the agent is told when pods come, change, go, or use the node's network).
#include <gtest/gtest.h>

#include "cri/cri.pb.h"
#include "runtime/cri_status.hpp"

using namespace topowall;
using namespace topowall::runtime;
namespace v1 = ::runtime::v1;

namespace {

// The shape of containerd 1.6's verbose `info` (trimmed): the pause process and the OCI spec.
const char* kContainerdInfo = R"({"pid":4242,"processStatus":"running","netNamespaceClosed":false,
  "runtimeSpec":{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},
  {"type":"mount"},{"type":"network","path":"/run/containerd/io.containerd.grpc.v1.cri/netns/cni-1234"}]}}})";

v1::PodSandboxStatusResponse status(const std::string& id, const std::string& ns, const std::string& name,
                                    const std::string& ip) {
  v1::PodSandboxStatusResponse r;
  auto* st = r.mutable_status();
  st->set_id(id);
  st->mutable_metadata()->set_name(name);
  st->mutable_metadata()->set_namespace_(ns);
  st->set_state(v1::SANDBOX_READY);
  (*st->mutable_labels())["app"] = "web";
  st->mutable_network()->set_ip(ip);
  (*r.mutable_info())["info"] = kContainerdInfo;
  return r;
}

Sandbox pod(const std::string& id, const std::string& ns, const std::string& ip) {
  auto s = sandbox_from_status(status(id, ns, "web-" + id, ip));
  EXPECT_TRUE(s) << s.error().message;
  return *s;
}

struct Recorder {
  std::vector<DiscoveryEvent> events;
  DiscoveryHandler handler() {
    return [this](const DiscoveryEvent& e) { events.push_back(e); };
  }
  std::vector<std::string> summary() {
    std::vector<std::string> out;
    for (const auto& e : events) {
      switch (e.kind) {
        case DiscoveryEvent::Kind::upsert: out.push_back("+" + e.info.id); break;
        case DiscoveryEvent::Kind::remove: out.push_back("-" + e.id); break;
        case DiscoveryEvent::Kind::synced: out.push_back("synced"); break;
      }
    }
    events.clear();
    return out;
  }
};

}  // namespace

TEST(CriSandbox, AVerboseStatusIsOneEndpointWithItsNamespaceLabelsAddressesAndNetns) {
  auto r = status("abc", "shop", "web-7d9f-x2x", "10.88.0.5");
  r.mutable_status()->mutable_network()->add_additional_ips()->set_ip("fd00::5");
  auto s = sandbox_from_status(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->host_network);
  EXPECT_EQ(s->info.id, "abc");
  EXPECT_EQ(s->info.name, "web-7d9f-x2x");
  EXPECT_EQ(s->info.pod_namespace, "shop");
  EXPECT_EQ(s->info.labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_EQ(s->info.addresses, (std::vector<IpAddr>{*IpAddr::parse("10.88.0.5"), *IpAddr::parse("fd00::5")}));
  EXPECT_EQ(s->info.netns_path, "/run/containerd/io.containerd.grpc.v1.cri/netns/cni-1234");
  EXPECT_EQ(s->info.pid, 4242);
}

TEST(CriSandbox, HostNetworkPodsAreHostAndAnUnparsableAddressIsRefused) {
  auto r = status("h", "kube-system", "exporter", "");
  r.mutable_status()->mutable_linux()->mutable_namespaces()->mutable_options()->set_network(v1::NODE);
  auto s = sandbox_from_status(r);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->host_network);
  auto bad = status("b", "shop", "web", "10.88.0.999");
  auto refused = sandbox_from_status(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("shop/web"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(sandbox_from_status(v1::PodSandboxStatusResponse{})) << "a status without an id";
}

TEST(CriSandbox, VerboseInfoFallsBackToThePauseProcessAndSurvivesGarbage) {
  EXPECT_EQ(parse_verbose_info({{"info", R"({"pid":77})"}}).netns_path, "/proc/77/ns/net");
  auto junk = parse_verbose_info({{"info", "not json"}, {"x", R"({"runtimeSpec":{"linux":{"namespaces":7}}})"},
                                  {"y", R"({"pid":"many","runtimeSpec":[]})"}});
  EXPECT_EQ(junk.netns_path, "");
  EXPECT_EQ(junk.pid, 0);
}

TEST(CriSandbox, ListingsBecomeUpsertsOfTheNewAndChangedAndRemovesOfTheVanished) {
  SandboxSet set;
  DiscoveryStats stats;
  Recorder rec;
  const auto t = std::chrono::steady_clock::now();
  set.apply({pod("a", "shop", "10.88.0.2"), pod("b", "tenant", "10.88.0.3")}, {}, rec.handler(), stats);
  EXPECT_EQ(rec.summary(), (std::vector<std::string>{"+a", "+b", "synced"}));
  // The same listing again: nothing to say (relists are periodic).
  set.apply({pod("a", "shop", "10.88.0.2"), pod("b", "tenant", "10.88.0.3")}, t, rec.handler(), stats);
  EXPECT_TRUE(rec.summary().empty());
  // A new pod is stamped with when its change was noticed; a vanished one is removed.
  set.apply({pod("a", "shop", "10.88.0.2"), pod("c", "shop", "10.88.0.4")}, t, rec.handler(), stats);
  ASSERT_EQ(rec.events.size(), 2u);
  EXPECT_EQ(rec.events[1].seen, t);
  EXPECT_EQ(rec.events[1].info.pod_namespace, "shop");
  EXPECT_EQ(rec.summary(), (std::vector<std::string>{"-b", "+c"}));
  // A pod whose status changed (its address) is upserted again.
  set.apply({pod("a", "shop", "10.88.0.9"), pod("c", "shop", "10.88.0.4")}, {}, rec.handler(), stats);
  EXPECT_EQ(rec.summary(), (std::vector<std::string>{"+a"}));
  EXPECT_EQ(set.known().size(), 2u);
}

TEST(CriSandbox, HostNetworkPodsAreCountedOnceAndNeverEndpoints) {
  SandboxSet set;
  DiscoveryStats stats;
  Recorder rec;
  Sandbox host = pod("h", "kube-system", "");
  host.host_network = true;
  set.apply({host, pod("a", "shop", "10.88.0.2")}, {}, rec.handler(), stats);
  set.apply({host, pod("a", "shop", "10.88.0.2")}, {}, rec.handler(), stats);
  EXPECT_EQ(rec.summary(), (std::vector<std::string>{"+a", "synced"}));
  EXPECT_EQ(stats.host_network, 1u);
  // Gone and back: a new pod with the node's network, counted again.
  set.apply({pod("a", "shop", "10.88.0.2")}, {}, rec.handler(), stats);
  set.apply({host, pod("a", "shop", "10.88.0.2")}, {}, rec.handler(), stats);
  EXPECT_EQ(stats.host_network, 2u);
  EXPECT_TRUE(rec.summary().empty());
}
