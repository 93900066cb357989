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
  EXPECT_EQ(runtime::parse_event({{"Type", "container"}, {"Action", "init"}, {"Actor", {{"ID", "x"}}}})->action,
            runtime::ContainerEvent::Action::init);
  EXPECT_FALSE(runtime::parse_event({{"Type", "image"}, {"Action", "pull"}, {"Actor", {{"ID", "x"}}}}));
}

// An id from the list or the event stream becomes the path of the next request
// (/containers/<id>/json): one with a line break, a space or a '/' would rewrite that request.
TEST(DockerJson, IdsThatWouldChangeTheNextRequestAreRefused) {
  for (const char* bad : {"a\r\nHost: x\r\n\r\nGET /info", "../../info", "a b", "x?y", ""}) {
    EXPECT_FALSE(runtime::parse_event({{"Type", "container"}, {"Action", "start"}, {"Actor", {{"ID", bad}}}})) << bad;
    EXPECT_TRUE(runtime::container_ids(json::array({{{"Id", bad}}})).empty()) << bad;
  }
  EXPECT_FALSE(runtime::parse_event({{"Type", "container"}, {"Action", "start"}, {"Actor", {{"ID", std::string(129, 'a')}}}}));
  const std::string id(64, 'f');
  EXPECT_EQ(runtime::container_ids(json::array({{{"Id", id}}, {{"Id", 7}}, json::array(), {{"Names", {"/x"}}}})),
            std::set<std::string>{id});
  EXPECT_TRUE(runtime::container_ids(json::object({{"Id", id}})).empty());
}

// Its addresses are the node's: such a container is `host`, never a workload's endpoint.
TEST(DockerJson, HostNetworkContainerIsNoEndpoint) {
  EXPECT_FALSE(runtime::parse_inspect(load("docker_inspect_host_network.json"))) << "docker, --network host";
  json podman = {{"Id", "p"},
                 {"State", {{"Pid", 42}, {"Running", true}}},
                 {"HostConfig", {{"NetworkMode", "host"}}},
                 {"NetworkSettings", {{"SandboxKey", ""}}}};
  EXPECT_FALSE(runtime::parse_inspect(podman)) << "podman, --network host";
  EXPECT_TRUE(runtime::shares_host_network(load("docker_inspect_host_network.json")));
  EXPECT_TRUE(runtime::shares_host_network(podman));
  EXPECT_FALSE(runtime::shares_host_network(load("podman_inspect.json")));
  EXPECT_FALSE(runtime::shares_host_network({{"HostConfig", {{"NetworkMode", "bridge"}}}}));
}

// Another version's or a broken runtime's record is refused, naming the field; nothing throws.
TEST(DockerJson, MissingOrMalformedStateAndNetworkSettingsAreErrors) {
  const json good = load("podman_inspect.json");
  for (const char* field : {"State", "NetworkSettings"})
    for (const json& bad : {json(), json("running"), json::array(), json(7)}) {
      json j = good;
      if (bad.is_null()) j.erase(field);
      else j[field] = bad;
      auto ep = runtime::parse_inspect(j);
      ASSERT_FALSE(ep) << field << " = " << bad.dump();
      EXPECT_NE(ep.error().message.find(field), std::string::npos) << ep.error().message;
    }
  EXPECT_FALSE(runtime::parse_inspect(json::array()));
  EXPECT_FALSE(runtime::parse_inspect(json("x")));
  EXPECT_TRUE(runtime::is_running(good));
  for (const json& state : {json(), json("running"), json{{"Running", "true"}}, json{{"Running", false}}})
    EXPECT_FALSE(runtime::is_running({{"State", state}})) << state.dump();
}
