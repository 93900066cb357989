// The metrics endpoint over real loopback TCP: routes, probes, limits, a failing status.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <thread>

#include "metrics/http_server.hpp"

using namespace topowall;
using nlohmann::json;

namespace {

struct MetricsFixture : ::testing::Test {
  void SetUp() override {
    server = std::make_unique<metrics::MetricsServer>(
        io,
        [this] {
          if (fail) throw std::runtime_error("status broke");
          return json{{"mode", "monitor"},
                      {"ruleset_applied", applied.load()},
                      {"ruleset_degraded", degraded.load()},
                      {"bridge_netfilter", bridge.load()},
                      {"counters", {{"alerts", 9}}}};
        },
        /*max_connections=*/2);
    auto st = server->start("127.0.0.1:0");
    ASSERT_TRUE(st) << st.error().message;
    thread = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    boost::asio::post(io, [this] { server->stop(); });
    work.reset();
    io.stop();
    thread.join();
  }
  int connect_fd() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return fd;
  }
  // One raw request; the whole response (the server closes after it).
  std::string request(const std::string& raw) {
    int fd = connect_fd();
    (void)!send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return out;
  }
  std::string get(const std::string& path) { return request("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"); }

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<metrics::MetricsServer> server;
  std::thread thread;
  std::atomic<bool> applied{false}, fail{false}, degraded{false}, bridge{true};
};

}  // namespace

TEST(MetricsListen, ParsesHostPortForms) {
  EXPECT_EQ(metrics::parse_listen("127.0.0.1:9617")->port(), 9617);
  EXPECT_EQ(metrics::parse_listen("[::1]:9617")->address().to_string(), "::1");
  EXPECT_EQ(metrics::parse_listen(":9617")->address().to_string(), "0.0.0.0");
  for (const char* bad : {"9617", "127.0.0.1:", "127.0.0.1:70000", "localhost:9617", "1.2.3.4:9x"}) {
    auto r = metrics::parse_listen(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("expected HOST:PORT"), std::string::npos) << r.error().message;
  }
}

TEST_F(MetricsFixture, ServesPrometheusTextAndProbes) {
  auto m = get("/metrics");
  EXPECT_EQ(m.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << m;
  EXPECT_NE(m.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << m;
  EXPECT_NE(m.find("\ntopowall_mode{mode=\"monitor\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\ntopowall_alerts_total 9\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\ntopowall_metrics_requests_total 1\n"), std::string::npos) << m;

  EXPECT_EQ(get("/healthz").rfind("HTTP/1.1 503", 0), 0u) << "not ready before the ruleset is in the kernel";
  applied = true;
  auto h = get("/healthz");
  EXPECT_EQ(h.rfind("HTTP/1.1 200", 0), 0u) << h;
  EXPECT_EQ(h.substr(h.size() - 3), "ok\n");
  // Not ready while the ruleset cannot be programmed, or while bridged traffic bypasses the hooks.
  degraded = true;
  h = get("/healthz");
  EXPECT_EQ(h.rfind("HTTP/1.1 503", 0), 0u) << h;
  EXPECT_NE(h.find("retrying"), std::string::npos) << h;
  degraded = false;
  bridge = false;
  h = get("/healthz");
  EXPECT_EQ(h.rfind("HTTP/1.1 503", 0), 0u) << h;
  EXPECT_NE(h.find("br_netfilter"), std::string::npos) << h;
  EXPECT_NE(get("/metrics").find("\ntopowall_bridge_netfilter 0\n"), std::string::npos);
  bridge = true;

  auto head = request("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_EQ(head.find("topowall_mode"), std::string::npos) << "HEAD has no body";
}

TEST_F(MetricsFixture, RefusesWhatItDoesNotServeAndSurvivesAFailingStatus) {
  EXPECT_EQ(get("/").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(request("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(request("garbage\r\n\r\n"), "") << "a malformed request is dropped";
  EXPECT_EQ(request("GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"), "")
      << "oversized headers are dropped";
  fail = true;
  EXPECT_EQ(get("/metrics").rfind("HTTP/1.1 500", 0), 0u);
  fail = false;
  EXPECT_EQ(get("/metrics").rfind("HTTP/1.1 200", 0), 0u) << "the server outlives a failing status";
  EXPECT_GE(server->stats().rejected, 4u);
  EXPECT_EQ(server->stats().errors, 1u);
}

TEST_F(MetricsFixture, IdleConnectionsBeyondTheLimitAreClosed) {
  // Two idle clients hold both slots; a third is closed at once, and served again once a slot frees.
  int a = connect_fd(), b = connect_fd();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(get("/metrics"), "") << "over the limit";
  close(a);
  close(b);
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = get("/metrics").rfind("HTTP/1.1 200", 0) == 0;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served);
}
