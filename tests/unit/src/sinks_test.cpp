// Alert sinks: the JSON-lines file and the webhook (against a local HTTP server).
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <sstream>

#include "alerts/sinks.hpp"

using namespace topowall;
namespace asio = boost::asio;

namespace {
topology::Alert alert() {
  topology::Alert a;
  a.time = Clock::now();
  a.edge = {"db", "api", Proto::tcp, 8080};
  a.src_addr = "10.0.0.9";
  a.dst_addr = "10.0.0.4";
  a.blocked = true;
  return a;
}
}  // namespace

TEST(Sinks, JsonLinesAppendsOneObjectPerAlert) {
  std::string path = "/tmp/topowall-sink-" + std::to_string(getpid()) + ".jsonl";
  {
    alerts::JsonlSink s(path);
    s.send(alert());
    s.send(alert());
  }
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["src"], "db");
    ++n;
  }
  EXPECT_EQ(n, 2);
  unlink(path.c_str());
}

namespace {
int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += nlohmann::json::parse(line)["dst"] == "api";
  return n;
}
}  // namespace

// logrotate's two ways: rename and recreate (the sink follows the path), and copytruncate (O_APPEND).
TEST(Sinks, JsonLinesFollowsLogRotation) {
  std::string path = "/tmp/topowall-sink-rot-" + std::to_string(getpid()) + ".jsonl", old = path + ".1";
  std::string err;
  asio::io_context io;
  auto s = alerts::make_sink(io, "jsonl:" + path, err);
  ASSERT_TRUE(s) << err;
  s->send(alert());
  ASSERT_EQ(rename(path.c_str(), old.c_str()), 0);
  s->send(alert());
  s->send(alert());
  EXPECT_EQ(count_lines(old), 1) << "nothing more goes to the rotated file";
  EXPECT_EQ(count_lines(path), 2) << "a new file at the path";
  ASSERT_EQ(truncate(path.c_str(), 0), 0);
  s->send(alert());
  EXPECT_EQ(count_lines(path), 1) << "after copytruncate the next line starts at offset 0";
  unlink(path.c_str());
  s->send(alert());
  EXPECT_EQ(count_lines(path), 1) << "a deleted file is recreated";
  EXPECT_EQ(s->dropped(), 0u);
  unlink(path.c_str());
  unlink(old.c_str());
}

TEST(Sinks, AnUnwritableAlertFileIsAStartUpError) {
  asio::io_context io;
  std::string err;
  EXPECT_FALSE(alerts::make_sink(io, "jsonl:/nonexistent-topowall-dir/alerts.jsonl", err));
  EXPECT_NE(err.find("/nonexistent-topowall-dir/alerts.jsonl: No such file or directory"), std::string::npos) << err;
  EXPECT_NE(err.find("does its directory exist"), std::string::npos) << err;
}

TEST(Sinks, WebhookPostsJsonAndCountsFailures) {
  asio::io_context io;
  asio::ip::tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acc.local_endpoint().port();
  std::string body;
  asio::ip::tcp::socket peer(io);
  asio::streambuf buf;
  acc.async_accept(peer, [&](boost::system::error_code ec) {
    ASSERT_FALSE(ec);
    asio::async_read_until(peer, buf, "}", [&](boost::system::error_code, std::size_t) {
      std::stringstream ss;
      ss << &buf;
      body = ss.str();
      static const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
      asio::async_write(peer, asio::buffer(ok), [](boost::system::error_code, std::size_t) {});
    });
  });
  std::string err;
  auto sink = alerts::make_sink(io, "webhook:http://127.0.0.1:" + std::to_string(port) + "/hook", err);
  ASSERT_TRUE(sink) << err;
  sink->send(alert());
  io.run_for(std::chrono::seconds(2));
  EXPECT_NE(body.find("POST /hook HTTP/1.1"), std::string::npos) << body;
  EXPECT_NE(body.find("\"verdict\":\"blocked\""), std::string::npos) << body;
  EXPECT_EQ(sink->dropped(), 0u);

  // Nobody listening: the alert is dropped and counted, nothing throws.
  acc.close();
  io.restart();
  auto dead = alerts::make_sink(io, "webhook:http://127.0.0.1:" + std::to_string(port) + "/hook", err);
  dead->send(alert());
  io.run_for(std::chrono::seconds(2));
  EXPECT_EQ(dead->dropped(), 1u);
  EXPECT_FALSE(alerts::make_sink(io, "webhook:ftp://x", err));
  EXPECT_TRUE(alerts::make_sink(io, "webhook:https://x", err)) << "https, verified against the system CAs";
  EXPECT_FALSE(alerts::make_sink(io, "pager", err));
  EXPECT_NE(err.find("unknown alert sink"), std::string::npos);
}
