// The radar over real loopback TCP: the page and its script under a strict policy, read-only, the live
// stream (a change reaches a watching page), and the exported file's policy matching what it inlines.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "metrics/http_server.hpp"
#include "metrics/radar_page.hpp"

using namespace topowall;
using nlohmann::json;

namespace {

struct RadarFixture : ::testing::Test {
  void SetUp() override {
    server = std::make_unique<metrics::MetricsServer>(io, [] { return json{{"mode", "learn"}}; });
    server->set_radar([this] {
      if (fail) throw std::runtime_error("model broke");
      return json{{"version", 1}, {"gen", gen.load()}, {"nodes", json::array({{{"id", "<b>web</b>"}}})}};
    });
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
  // Reads from `fd` until `needle` arrived or `ms` passed; everything read so far.
  static std::string read_until(int fd, std::string& acc, const std::string& needle, int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (acc.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      acc.append(buf, static_cast<std::size_t>(n));
    }
    return acc;
  }

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<metrics::MetricsServer> server;
  std::thread thread;
  std::atomic<int> gen{0};
  std::atomic<bool> fail{false};
};

std::string between(const std::string& s, const std::string& a, const std::string& b) {
  auto i = s.find(a);
  if (i == std::string::npos) return "";
  i += a.size();
  auto j = s.find(b, i);
  return j == std::string::npos ? "" : s.substr(i, j - i);
}

}  // namespace

TEST_F(RadarFixture, ServesThePageAndItsScriptUnderAStrictPolicy) {
  auto page = get("/radar");
  ASSERT_EQ(page.rfind("HTTP/1.1 200", 0), 0u) << page;
  EXPECT_NE(page.find("Content-Type: text/html"), std::string::npos);
  EXPECT_NE(page.find("Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'"),
            std::string::npos) << page;
  EXPECT_NE(page.find("X-Content-Type-Options: nosniff"), std::string::npos);
  EXPECT_NE(page.find("<script src=\"/radar.js\"></script>"), std::string::npos);
  // No inline code at all: the only script element loads /radar.js.
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_EQ(page.find("<!--radar:"), std::string::npos) << "a template mark was left in the page";
  auto js = get("/radar.js");
  EXPECT_NE(js.find("Content-Type: text/javascript"), std::string::npos) << js.substr(0, 300);
  EXPECT_NE(js.find("new EventSource('/radar/events')"), std::string::npos);
  EXPECT_NE(get("/radar.css").find("Content-Type: text/css"), std::string::npos);
  auto model = get("/radar/model.json");
  EXPECT_NE(model.find("\"gen\":0"), std::string::npos) << model;
  EXPECT_NE(get("/metrics").find("Content-Security-Policy"), std::string::npos) << "every answer carries the policy";
}

TEST_F(RadarFixture, ChangesNothingOverHttp) {
  for (const char* m : {"POST", "PUT", "DELETE", "PATCH"})
    EXPECT_EQ(request(std::string(m) + " /radar HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").rfind("HTTP/1.1 405", 0),
              0u) << m;
  EXPECT_EQ(get("/radar/approve").rfind("HTTP/1.1 404", 0), 0u);
  fail = true;
  EXPECT_EQ(get("/radar/model.json").rfind("HTTP/1.1 500", 0), 0u) << "a failing model is an error, not a crash";
  fail = false;
  EXPECT_EQ(get("/radar/model.json").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(RadarFixture, TheStreamSendsTheModelThenEachChangeWithinTwoSeconds) {
  int fd = connect_fd();
  const std::string req = "GET /radar/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string acc;
  read_until(fd, acc, "\"gen\":0", 2000);
  EXPECT_EQ(acc.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << acc;
  EXPECT_NE(acc.find("Content-Type: text/event-stream"), std::string::npos) << acc;
  ASSERT_NE(acc.find("event: model\ndata: {"), std::string::npos) << acc;
  const auto t0 = std::chrono::steady_clock::now();
  gen = 1;
  read_until(fd, acc, "\"gen\":1", 3000);
  EXPECT_NE(acc.find("\"gen\":1"), std::string::npos) << "the change never reached the stream";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  // Unchanged: nothing more is sent (the model is compared, not re-sent every tick).
  const auto size = acc.size();
  read_until(fd, acc, "never", 1200);
  EXPECT_EQ(acc.size(), size) << acc.substr(size);
  close(fd);
}

TEST_F(RadarFixture, StreamsBeyondTheLimitAreRefused) {
  std::vector<int> fds;
  const std::string req = "GET /radar/events HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 8; ++i) {
    fds.push_back(connect_fd());
    (void)!send(fds.back(), req.data(), req.size(), MSG_NOSIGNAL);
    std::string acc;
    read_until(fds.back(), acc, "event: model", 2000);
    ASSERT_NE(acc.find("event: model"), std::string::npos) << i;
  }
  EXPECT_EQ(request(req).rfind("HTTP/1.1 503", 0), 0u);
  const auto m = get("/metrics");
  EXPECT_EQ(m.rfind("HTTP/1.1 200", 0), 0u) << "open streams do not starve the scraper";
  EXPECT_NE(m.find("\ntopowall_radar_streams 8\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\ntopowall_radar_streams_refused_total 1\n"), std::string::npos) << m;
  for (int fd : fds) close(fd);
}

TEST(RadarPage, TheExportedFileAllowsExactlyWhatItInlines) {
  json model{{"version", 1}, {"nodes", json::array({{{"id", "a"}, {"labels", {{"x", "</script><script>alert(1)</script>"}}}}})}};
  auto page = metrics::radar_exported_page(model);
  const auto csp = between(page, "http-equiv=\"Content-Security-Policy\" content=\"", "\"");
  ASSERT_FALSE(csp.empty()) << page.substr(0, 600);
  EXPECT_EQ(csp.rfind("default-src 'none';", 0), 0u) << csp;
  EXPECT_EQ(csp.find("connect-src"), std::string::npos) << "no network at all: " << csp;
  EXPECT_EQ(csp.find("'self'"), std::string::npos) << csp;
  const auto script = between(page, "</script>\n<script>", "</script>");
  ASSERT_EQ(script, std::string(metrics::radar_js())) << "the inline script is the served one, byte for byte";
  EXPECT_NE(csp.find("script-src '" + metrics::csp_hash(script) + "'"), std::string::npos) << csp;
  const auto style = between(page, "<style>", "</style>");
  EXPECT_NE(csp.find("style-src '" + metrics::csp_hash(style) + "'"), std::string::npos) << csp;
  // The label cannot end the data element: exactly one "</script>" after the data, before the code.
  const auto data = between(page, "id=\"radar-data\">", "</script>");
  EXPECT_EQ(data.find('<'), std::string::npos) << data;
  EXPECT_EQ(json::parse(data), model) << "escaped, the data still parses to the model";
  EXPECT_EQ(std::string(metrics::radar_js()).find("</script"), std::string::npos) << "the script could not be inlined";
  EXPECT_EQ(std::string(metrics::radar_js()).find("innerHTML"), std::string::npos) << "names go in as text only";
}

TEST(RadarPage, CspHashIsTheBase64OfSha256) {
  // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
  EXPECT_EQ(metrics::csp_hash("alert(1)"), "sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=");
}
