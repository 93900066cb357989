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
  EXPECT_FALSE(alerts::make_sink(io, "webhook:https://x", err));
  EXPECT_FALSE(alerts::make_sink(io, "pager", err));
  EXPECT_NE(err.find("unknown alert sink"), std::string::npos);
}
