// DockerClient against a fake Docker Engine API on a unix socket: what discovery reports
// for host-network containers and malformed inspect records.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <map>
#include <set>

#include "runtime/docker_client.hpp"

using namespace topowall;
using nlohmann::json;
namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {

// Canned answers by request target; the event stream stays open after its first chunk.
struct FakeDockerApi {
  FakeDockerApi(asio::io_context& io, const std::string& path) : acceptor(io) {
    ::unlink(path.c_str());
    acceptor.open();
    acceptor.bind(local::endpoint(path));
    acceptor.listen();
    accept();
  }
  struct Conn {
    explicit Conn(local::socket s) : sock(std::move(s)) {}
    local::socket sock;
    asio::streambuf in;
    std::string out;
  };
  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, local::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(std::move(s));
      asio::async_read_until(c->sock, c->in, "\r\n\r\n", [this, c](boost::system::error_code ec, std::size_t) {
        if (!ec) answer(c);
      });
      accept();
    });
  }
  void answer(const std::shared_ptr<Conn>& c) {
    std::istream head(&c->in);
    std::string method, target;
    head >> method >> target;
    if (auto d = drops.find(target); d != drops.end() && d->second > 0) {  // a runtime that hangs up unanswered
      --d->second;
      boost::system::error_code ec;
      c->sock.close(ec);
      return;
    }
    if (auto s = stalls.find(target); s != stalls.end() && s->second > 0) {  // a runtime that never answers
      --s->second;
      held.push_back(c);
      return;
    }
    if (target.rfind("/v1.41/events", 0) == 0) {
      char len[16];
      std::snprintf(len, sizeof len, "%zx", events.size());
      c->out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
      if (!events.empty()) c->out += std::string(len) + "\r\n" + events + "\r\n";
      streams.push_back(c);
    } else {
      auto it = docs.find(target);
      const std::string body = it == docs.end() ? R"({"message":"no such container"})" : it->second.dump();
      c->out = std::string("HTTP/1.1 ") + (it == docs.end() ? "404 Not Found" : "200 OK") +
               "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    asio::async_write(c->sock, asio::buffer(c->out), [c](boost::system::error_code, std::size_t) {});
  }
  local::acceptor acceptor;
  std::map<std::string, json> docs;  // target -> body
  std::string events;                // event lines sent once the stream opens
  std::map<std::string, int> drops;  // target -> how many of its requests go unanswered (connection closed)
  std::map<std::string, int> stalls;  // target -> how many of its requests are held open, never answered
  std::vector<std::shared_ptr<Conn>> held;
  std::vector<std::shared_ptr<Conn>> streams;
};

// Runs the client until it classifies a container (at most 5 s), then stops it and removes the socket:
// the ids it upserted.
std::set<std::string> first_upserts(asio::io_context& io, runtime::DockerClient& client, const std::string& path) {
  std::set<std::string> upserted;
  client.start([&](const DiscoveryEvent& e) {
    if (e.kind == DiscoveryEvent::Kind::upsert) upserted.insert(e.info.id);
  });
  for (int i = 0; i < 250 && upserted.empty(); ++i) io.run_for(std::chrono::milliseconds(20));
  client.stop();
  ::unlink(path.c_str());
  return upserted;
}

json load(const char* name) {
  std::ifstream in(std::string(TOPOWALL_TEST_DATA) + "/" + name);
  return json::parse(in);
}

json running(const std::string& id, json network_settings) {
  return {{"Id", id},
          {"Name", "/" + id},
          {"State", {{"Running", true}, {"Pid", 4242}}},
          {"Config", {{"Image", "busybox"}, {"Labels", {{"app", id}}}}},
          {"NetworkSettings", std::move(network_settings)}};
}

}  // namespace

TEST(DockerClient, HostNetworkAndMalformedContainersAreNoEndpoints) {
  asio::io_context io;
  const std::string path = "/tmp/topowall-docker-" + std::to_string(getpid()) + ".sock";
  FakeDockerApi api(io, path);
  const json hostnet = load("docker_inspect_host_network.json");
  const std::string hostnet_id = hostnet["Id"];
  json nostate = running("nostate", {{"IPAddress", "10.88.0.12"}});
  nostate.erase("State");
  json badstate = running("badstate", {{"IPAddress", "10.88.0.13"}});
  badstate["State"] = "running";
  json nullstate = running("nullstate", {{"IPAddress", "10.88.0.14"}});
  nullstate["State"] = nullptr;
  const std::map<std::string, json> containers = {
      {"web1", running("web1", {{"IPAddress", "10.88.0.10"}, {"SandboxKey", "/run/netns/netns-web1"}})},
      {hostnet_id, hostnet},
      // Not marked host, but its sandbox is the agent's own network namespace.
      {"sandbox", running("sandbox", {{"SandboxKey", "/proc/self/ns/net"}})},
      {"nostate", nostate},
      {"badstate", badstate}};
  json list = json::array();
  for (const auto& [id, doc] : containers) {
    list.push_back({{"Id", id}});
    api.docs["/v1.41/containers/" + id + "/json"] = doc;
  }
  api.docs["/v1.41/containers/json"] = list;
  // Started after the list: inspected through the event path.
  api.docs["/v1.41/containers/nullstate/json"] = nullstate;
  api.docs["/v1.41/containers/badnet/json"] = running("badnet", "oops");
  api.events = R"({"Type":"container","Action":"start","Actor":{"ID":"nullstate"}})" "\n"
               R"({"Type":"container","Action":"start","Actor":{"ID":"badnet"}})" "\n";

  runtime::DockerClient client(io, path);
  std::set<std::string> upserted;
  bool synced = false;
  client.start([&](const DiscoveryEvent& e) {
    if (e.kind == DiscoveryEvent::Kind::upsert) upserted.insert(e.info.id);
    if (e.kind == DiscoveryEvent::Kind::synced) synced = true;
  });
  // Every inspect answered: the list's five and the events' two.
  auto done = [&] { return synced && client.stats().errors + client.stats().host_network + upserted.size() == 7; };
  for (int i = 0; i < 250 && !done(); ++i) io.run_for(std::chrono::milliseconds(20));
  client.stop();
  ::unlink(path.c_str());

  EXPECT_TRUE(synced);
  EXPECT_EQ(upserted, std::set<std::string>{"web1"});
  EXPECT_EQ(client.stats().host_network, 2u) << "NetworkMode host, and a sandbox that is the agent's own namespace";
  EXPECT_EQ(client.stats().errors, 4u) << "State missing, a string, null; NetworkSettings a string";
}

// podman's `init` comes about 0.3 s before `start`, with the network up and the process waiting: the
// container is classified then, so its first packets are not dropped as unclassified. A late reply
// for a container that already exited (no process) classifies nothing.
TEST(DockerClient, AnInitialisedContainerIsAnEndpointBeforeItStarts) {
  asio::io_context io;
  const std::string path = "/tmp/topowall-docker-init-" + std::to_string(getpid()) + ".sock";
  FakeDockerApi api(io, path);
  auto initialised = running("web2", {{"IPAddress", "10.88.0.20"}, {"SandboxKey", "/run/netns/netns-web2"}});
  initialised["State"] = {{"Status", "created"}, {"Running", false}, {"Pid", 5151}};
  auto exited = running("gone", {{"IPAddress", "10.88.0.21"}});
  exited["State"] = {{"Status", "exited"}, {"Running", false}, {"Pid", 0}};
  auto created = running("created", {{"IPAddress", "10.88.0.22"}});
  created["State"] = {{"Status", "created"}, {"Running", false}, {"Pid", 0}};
  api.docs["/v1.41/containers/json"] = json::array();
  api.docs["/v1.41/containers/web2/json"] = initialised;
  api.docs["/v1.41/containers/gone/json"] = exited;
  api.docs["/v1.41/containers/created/json"] = created;
  api.events = R"({"Type":"container","Action":"init","Actor":{"ID":"web2"}})" "\n"
               R"({"Type":"container","Action":"init","Actor":{"ID":"gone"}})" "\n"
               R"({"Type":"container","Action":"start","Actor":{"ID":"created"}})" "\n";
  runtime::DockerClient client(io, path);
  std::set<std::string> upserted;
  client.start([&](const DiscoveryEvent& e) {
    if (e.kind == DiscoveryEvent::Kind::upsert) upserted.insert(e.info.id);
  });
  for (int i = 0; i < 250 && client.stats().inspects < 3; ++i) io.run_for(std::chrono::milliseconds(20));
  io.run_for(std::chrono::milliseconds(200));
  client.stop();
  ::unlink(path.c_str());
  EXPECT_EQ(upserted, std::set<std::string>{"web2"}) << "initialised: yes; exited, or `start` yet not running: no";
}

// The event stream is one JSON document per line: a runtime that never ends a line is cut off (and

// reconnected to) at 1 MiB, instead of being buffered for without end.

TEST(DockerClient, AnEventLineWithoutEndIsNotBufferedWithoutBound) {
  asio::io_context io;
  const std::string path = "/tmp/topowall-docker-long-" + std::to_string(getpid()) + ".sock";
  FakeDockerApi api(io, path);
  api.docs["/v1.41/containers/json"] = json::array();
  api.events = std::string(3 << 20, 'x');
  runtime::DockerClient client(io, path);
  client.start([](const DiscoveryEvent&) {});
  for (int i = 0; i < 250 && client.stats().reconnects == 0; ++i) io.run_for(std::chrono::milliseconds(20));
  client.stop();
  ::unlink(path.c_str());
  EXPECT_GE(client.stats().reconnects, 1u);
  EXPECT_GE(client.stats().errors, 1u);
}

// An inspect that got no answer (the runtime restarting, or too slow for the request's timeout) is not
// the container's last word: discovery resyncs (reconnect, list, inspect again) instead of leaving a
// running container unclassified until the event stream happens to break.
TEST(DockerClient, AnInspectWithoutAnAnswerIsRetriedThroughAResync) {
  asio::io_context io;
  const std::string path = "/tmp/topowall-docker-drop-" + std::to_string(getpid()) + ".sock";
  FakeDockerApi api(io, path);
  const std::string target = "/v1.41/containers/late/json";
  api.docs["/v1.41/containers/json"] = json::array({{{"Id", "late"}}});
  api.docs[target] = running("late", {{"IPAddress", "10.88.0.30"}, {"SandboxKey", "/run/netns/netns-late"}});
  api.events = R"({"Type":"container","Action":"start","Actor":{"ID":"late"}})" "\n";
  api.drops[target] = 2;  // the list's inspect and the event's
  runtime::DockerClient client(io, path);
  const auto upserted = first_upserts(io, client, path);
  EXPECT_EQ(upserted, std::set<std::string>{"late"}) << "the running container was never classified";
  EXPECT_EQ(api.drops[target], 0);
  EXPECT_GE(client.stats().reconnects, 1u) << "the resync is counted";
  EXPECT_GE(client.stats().errors, 2u);
}

// A runtime that accepts and never answers holds an inspect only for the client's timeout
// (`--runtime-timeout`); then discovery resyncs and classifies the container. With the default 10 s the
// container would still be unclassified when this test gives up (5 s).
TEST(DockerClient, AStalledRequestEndsAtTheConfiguredTimeout) {
  asio::io_context io;
  const std::string path = "/tmp/topowall-docker-stall-" + std::to_string(getpid()) + ".sock";
  FakeDockerApi api(io, path);
  const std::string target = "/v1.41/containers/slow/json";
  api.docs["/v1.41/containers/json"] = json::array({{{"Id", "slow"}}});
  api.docs[target] = running("slow", {{"IPAddress", "10.88.0.31"}, {"SandboxKey", "/run/netns/netns-slow"}});
  api.stalls[target] = 1;
  runtime::DockerClient client(io, path, std::chrono::milliseconds(300));
  const auto upserted = first_upserts(io, client, path);
  EXPECT_EQ(upserted, std::set<std::string>{"slow"}) << "the stalled inspect was not given up within 5 s";
  EXPECT_EQ(api.stalls[target], 0) << "the inspect was never stalled: the test proves nothing";
  EXPECT_GE(client.stats().errors, 1u) << "the timeout is counted";
}
