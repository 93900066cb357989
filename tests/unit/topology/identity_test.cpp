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
