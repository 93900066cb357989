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
