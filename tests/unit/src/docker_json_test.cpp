#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "runtime/docker_json.hpp"
#include "topowall/topology/json_limits.hpp"

using namespace topowall;
using nlohmann::json;

namespace {
// Through the client's bounded parser: real answers are well within its nesting limit.
json load(const char* name) {
  std::ifstream in(std::string(TOPOWALL_TEST_DATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = topology::parse_json(ss.str());
  EXPECT_TRUE(j) << name << ": " << j.error().message;
  return j ? *j : json();
}
}  // namespace

TEST(DockerJson, RecordedPodmanInspect) {
  auto ep = runtime::parse_inspect(load("podman_inspect.json"));
  ASSERT_TRUE(ep) << ep.error().message;
  EXPECT_EQ(ep->id.size(), 64u);
  EXPECT_EQ(ep->name, "tw-rec");
  EXPECT_EQ(ep->image, "localhost/topowall-busybox:latest");
  EXPECT_EQ(ep->labels.at("app"), "web");
  EXPECT_GT(ep->pid, 0);
  EXPECT_EQ(ep->netns_path.rfind("/run/netns/netns-", 0), 0u) << ep->netns_path;
  ASSERT_EQ(ep->addresses.size(), 1u);
  EXPECT_EQ(ep->addresses[0].to_string(), "10.88.0.3");
}

TEST(DockerJson, FallsBackToProcNetnsAndMultipleNetworks) {
  json j = {{"Id", "abc"},
            {"Name", "/x"},
            {"State", {{"Pid", 42}, {"Running", true}}},
            {"NetworkSettings",
             {{"SandboxKey", ""},
              {"Networks",
               {{"a", {{"IPAddress", "10.1.0.2"}, {"GlobalIPv6Address", "fd00::2"}}},
                {"b", {{"IPAddress", "10.2.0.2"}}}}}}}};
  auto ep = runtime::parse_inspect(j);
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->netns_path, "/proc/42/ns/net");
  EXPECT_EQ(ep->addresses.size(), 3u);
  EXPECT_FALSE(runtime::parse_inspect(json::object()));
}

TEST(DockerJson, RecordedStartEventAndActions) {
  auto ev = runtime::parse_event(load("podman_event_start.json"));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->action, runtime::ContainerEvent::Action::start);
  EXPECT_EQ(ev->id.size(), 64u);
  for (auto* a : {"die", "stop", "destroy", "remove"})
    EXPECT_EQ(runtime::parse_event({{"Type", "container"}, {"Action", a}, {"Actor", {{"ID", "x"}}}})->action,
              runtime::ContainerEvent::Action::stop)
        << a;
  EXPECT_EQ(runtime::parse_event({{"Type", "container"}, {"Action", "kill"}, {"Actor", {{"ID", "x"}}}})->action,
            runtime::ContainerEvent::Action::other);
  EXPECT_FALSE(runtime::parse_event({{"Type", "image"}, {"Action", "pull"}, {"Actor", {{"ID", "x"}}}}));
}
