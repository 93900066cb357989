#include <gtest/gtest.h>

#include "topowall/topology/identity.hpp"

using namespace topowall;
using namespace topowall::topology;

namespace {
EndpointInfo ep(std::string name, std::string image, std::map<std::string, std::string> labels = {}) {
  EndpointInfo e;
  e.id = "id-" + name;
  e.name = std::move(name);
  e.image = std::move(image);
  e.labels = std::move(labels);
  return e;
}
}  // namespace

TEST(Identity, FirstPresentLabelWins) {
  IdentityConfig cfg;
  EXPECT_EQ(workload_identity(ep("c1", "nginx", {{"app", "web"}, {"app.kubernetes.io/name", "other"}}), cfg), "web");
  EXPECT_EQ(workload_identity(ep("c1", "nginx", {{"app.kubernetes.io/name", "shop"}}), cfg), "shop");
}

TEST(Identity, FallsBackToImageRepositoryThenName) {
  IdentityConfig cfg;
  EXPECT_EQ(workload_identity(ep("c1", "docker.io/library/redis:7@sha256:abc"), cfg), "redis");
  EXPECT_EQ(workload_identity(ep("c1", "localhost:5000/team/api:v2"), cfg), "api");
  EXPECT_EQ(workload_identity(ep("frontend-1", ""), cfg), "frontend-1");
  EXPECT_EQ(workload_identity(ep("frontend-1", "sha256:0123"), cfg), "frontend-1");
}

TEST(Identity, ConfigurableLabelList) {
  IdentityConfig cfg{{"team"}};
  EXPECT_EQ(workload_identity(ep("c", "img", {{"app", "web"}, {"team", "payments"}}), cfg), "payments");
  EXPECT_EQ(workload_identity(ep("c", "img", {{"app", "web"}}), cfg), "img");
}

TEST(Identity, NamesAreSanitisedAndReservedNamesAvoided) {
  IdentityConfig cfg;
  auto n = workload_identity(ep("c", "", {{"app", "we\"b; drop}\n"}}), cfg);
  EXPECT_TRUE(is_valid_name(n)) << n;
  EXPECT_EQ(n, "we-b--drop--");
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "host"}}), cfg), "workload-host");
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "world"}}), cfg), "workload-world");
  EXPECT_EQ(sanitize_name(std::string(200, 'a')).size(), kMaxNameLength);
  EXPECT_FALSE(is_valid_name(""));
  EXPECT_FALSE(is_valid_name("-x"));
  EXPECT_FALSE(is_valid_name("a b"));
  EXPECT_TRUE(is_valid_name("api.v2_x-1"));
}

// The external networks' names are reserved like `host` and `world`: a workload that would take one
// (by label, image or name) gets a prefixed name, deterministic, valid and reserved by nothing.
TEST(Identity, ExternalNetworkNamesAreReservedToo) {
  IdentityConfig cfg;
  cfg.reserved = {"corp"};
  EXPECT_TRUE(is_reserved_name("host", cfg));
  EXPECT_TRUE(is_reserved_name("world"));
  EXPECT_TRUE(is_reserved_name("corp", cfg));
  EXPECT_FALSE(is_reserved_name("corp"));
  EXPECT_FALSE(is_reserved_name("web", cfg));
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "corp"}}), cfg), "workload-corp");
  EXPECT_EQ(workload_identity(ep("c", "registry.example/team/corp:1"), cfg), "workload-corp") << "from the image";
  EXPECT_EQ(workload_identity(ep("corp", ""), cfg), "workload-corp") << "from the name";
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "corp"}}), IdentityConfig{}), "corp") << "only when configured";

  // The prefixed name is reserved as well: the next one.
  IdentityConfig both{{"app"}, {"partner", "workload-partner"}};
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "partner"}}), both), "workload-2-partner");
  IdentityConfig host{{"app"}, {"workload-host"}};
  EXPECT_EQ(workload_identity(ep("c", "", {{"app", "host"}}), host), "workload-2-host");
}

TEST(Identity, PrefixedReservedNamesStayWithinTheLengthLimit) {
  const std::string longest(kMaxNameLength, 'n');
  IdentityConfig cfg;
  cfg.reserved = {longest};
  auto n = workload_identity(ep("c", "", {{"app", longest}}), cfg);
  EXPECT_TRUE(is_valid_name(n)) << n;
  EXPECT_EQ(n, ("workload-" + longest).substr(0, kMaxNameLength));

  // A name that prefixing and truncating gives back unchanged still ends up free.
  std::string fixed;
  while (fixed.size() < kMaxNameLength) fixed += "workload-";
  fixed.resize(kMaxNameLength);
  cfg.reserved = {fixed};
  auto f = workload_identity(ep("c", "", {{"app", fixed}}), cfg);
  EXPECT_TRUE(is_valid_name(f)) << f;
  EXPECT_FALSE(is_reserved_name(f, cfg)) << f;
}

namespace {
EndpointInfo pod(std::string ns, std::string name, std::map<std::string, std::string> labels = {}) {
  EndpointInfo e = ep(std::move(name), "", std::move(labels));
  e.pod_namespace = std::move(ns);
  return e;
}
}  // namespace

// The same app in two namespaces is two workloads; the namespace is part of the name.
TEST(Identity, PodsAreNamespaceScoped) {
  IdentityConfig cfg;
  EXPECT_EQ(workload_identity(pod("shop", "web-1", {{"app", "web"}}), cfg), "shop/web");
  EXPECT_EQ(workload_identity(pod("tenant-a", "web-1", {{"app", "web"}}), cfg), "tenant-a/web");
  EXPECT_EQ(workload_identity(pod("shop", "x", {{"app.kubernetes.io/name", "db"}}), cfg), "shop/db");
  EXPECT_EQ(workload_identity(pod("shop", "x", {{"team", "pay"}, {"app", "web"}}), IdentityConfig{{"team"}}), "shop/pay");
  // `host`, `world` and the networks are plain names: a pod's app may be called so without taking them.
  EXPECT_EQ(workload_identity(pod("shop", "x", {{"app", "host"}}), cfg), "shop/host");
  EXPECT_TRUE(is_valid_name("shop/web"));
}

// Without the label: the owner's name by the controllers' naming conventions, else the pod name.
TEST(Identity, PodsWithoutTheLabelAreNamedAfterTheirOwner) {
  IdentityConfig cfg;
  EXPECT_EQ(workload_identity(pod("shop", "web-5d9c8f7b6-x2k4q", {{"pod-template-hash", "5d9c8f7b6"}}), cfg), "shop/web");
  EXPECT_EQ(workload_identity(pod("shop", "my-api-77f9c6d4b-zq7lp", {{"pod-template-hash", "77f9c6d4b"}}), cfg), "shop/my-api");
  EXPECT_EQ(workload_identity(pod("shop", "db-12", {{"statefulset.kubernetes.io/pod-name", "db-12"},
                                                    {"controller-revision-hash", "db-6d8f5"}}), cfg),
            "shop/db");
  EXPECT_EQ(workload_identity(pod("kube-system", "kube-proxy-8wz5t",
                                  {{"controller-revision-hash", "7b9d5c4f8"}, {"pod-template-generation", "1"}}), cfg),
            "kube-system/kube-proxy");
  // No controller: the pod name without a generated suffix (one from the suffix alphabet only).
  EXPECT_EQ(workload_identity(pod("shop", "debug-x2k4q"), cfg), "shop/debug");
  EXPECT_EQ(workload_identity(pod("shop", "nginx-proxy"), cfg), "shop/nginx-proxy") << "'o' is never generated";
  EXPECT_EQ(workload_identity(pod("shop", "db-0"), cfg), "shop/db-0") << "no StatefulSet label: not an ordinal";
  // A hash label that does not match the name (a hand-made pod) names nothing.
  EXPECT_EQ(workload_identity(pod("shop", "web-abc", {{"pod-template-hash", "5d9c8f7b6"}}), cfg), "shop/web-abc");
}

// A tenant controls its pods' labels and names, never its namespace: nothing it writes may produce
// another namespace's name, or a name that is not valid.
TEST(Identity, LabelsCannotForgeAnotherNamespace) {
  IdentityConfig cfg;
  EXPECT_EQ(workload_identity(pod("tenant", "x", {{"app", "shop/web"}}), cfg), "tenant/shop-web");
  EXPECT_EQ(workload_identity(pod("tenant", "x", {{"app", "../shop/web"}}), cfg), "tenant/shop-web");
  EXPECT_EQ(workload_identity(pod("tenant", "shop/web"), cfg), "tenant/shop-web");
  EXPECT_EQ(workload_identity(pod("tenant", "x", {{"app", "/"}}), cfg), "tenant/x");
  const std::string slashes(300, '/');
  for (const std::string evil : {"shop/web", "a/b/c", "/", "\n", "web\"}", slashes.c_str()}) {
    auto n = workload_identity(pod("tenant", evil, {{"app", evil}}), cfg);
    EXPECT_TRUE(is_valid_name(n)) << n;
    EXPECT_EQ(name_namespace(n), "tenant") << n;
  }
  // A namespace that is not a DNS label did not come from Kubernetes: it never equals the one it resembles.
  auto odd = workload_identity(pod("Shop", "x", {{"app", "web"}}), cfg);
  EXPECT_EQ(odd, "invalid-shop/web");
  EXPECT_EQ(name_namespace(workload_identity(pod("shop/evil", "x", {{"app", "web"}}), cfg)), "invalid-shop-evil");
  EXPECT_TRUE(is_valid_name(workload_identity(pod(std::string(100, 'n'), "x"), cfg)));
}

// Exactly one '/', between a DNS label and a plain name.
TEST(Identity, NamespacedNamesAreValidatedStrictly) {
  EXPECT_TRUE(is_valid_name("kube-system/coredns"));
  EXPECT_TRUE(is_valid_name("a/B.c_d-e"));
  EXPECT_TRUE(is_valid_name(std::string(63, 'n') + "/" + std::string(63, 'a')));
  for (const auto* bad : {"/web", "shop/", "shop//web", "shop/web/x", "Shop/web", "-shop/web", "shop-/web", "sh_op/web",
                          "shop/-web", "shop/we b", "shop/../x"})
    EXPECT_FALSE(is_valid_name(bad)) << bad;
  EXPECT_FALSE(is_valid_name(std::string(64, 'n') + "/web"));
  EXPECT_FALSE(is_valid_name("shop/" + std::string(64, 'a')));
  EXPECT_FALSE(is_plain_name("shop/web")) << "nodes and networks never have a namespace";
  EXPECT_EQ(name_namespace("shop/web"), "shop");
  EXPECT_EQ(name_namespace("web"), "");
}
