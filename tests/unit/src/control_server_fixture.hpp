// A control server on a real unix socket in this process, with a handler of test methods, for the
// tests of the socket (control_server_test.cpp, control_server_fd_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <sys/stat.h>
#include <thread>

#include "control/server.hpp"

namespace topowall::ctltest {

using nlohmann::json;

struct ServerFixture : ::testing::Test {
  void SetUp() override {
    path = "/tmp/topowall-ctl-" + std::to_string(getpid()) + ".sock";
    control::ServerOptions o;
    o.path = path;
    o.max_request_bytes = max_request_bytes;
    o.max_requests_per_second = 50;
    o.max_output_bytes = max_output_bytes;
    o.group = group;
    server = std::make_unique<control::Server>(io, o, [this](const json& r, const control::Peer& p, const control::PushFn& push) {
      ++handled;
      // A large answer (as `topology export` or `rules show` can be), and a stream (as `flows watch`).
      if (r.value("method", "") == "big") return json{{"ok", true}, {"result", std::string(kBig, 'x')}};
      if (r.value("method", "") == "watch") {
        watcher = push;
        return json(nullptr);
      }
      if (r.value("method", "") == "whoami")
        return json{{"ok", true}, {"result", {{"uid", p.uid}, {"may_write", p.may_write}}}};
      if (r.value("method", "") == "throw") throw std::runtime_error("boom");
      // A large answer that says which request it answers, for the order of pipelined answers.
      if (r.value("method", "") == "seq")
        return json{{"ok", true}, {"result", {{"seq", r["params"].value("seq", -1)}, {"pad", std::string(kBig, 'x')}}}};
      // What came with the request as a descriptor: its inode, -1 for none.
      if (r.value("method", "") == "fd") {
        struct stat st{};
        const long ino = p.passed_fd >= 0 && fstat(p.passed_fd, &st) == 0 ? static_cast<long>(st.st_ino) : -1;
        return json{{"ok", true}, {"result", {{"ino", ino}}}};
      }
      if (r.value("method", "") == "status") return json{{"ok", true}, {"result", 42}};  // not what the CLI knows
      // Copies params into the answer, as the agent's dispatcher copies them.
      if (r.value("method", "") == "echo") return json{{"ok", true}, {"result", r.value("params", json::object())}};
      return control::error_response("unknown_method", "no");
    });
    ASSERT_TRUE(server->start());
    thread = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    io.stop();
    thread.join();
    server.reset();
  }
  // Raw exchange: send bytes, read one line.
  std::string raw(const std::string& bytes) { return raw_lines(bytes, 1).at(0); }
  // Send bytes on one connection, read `n` answer lines.
  std::vector<std::string> raw_lines(const std::string& bytes, int n) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    // The server may refuse (busy) and close before we write: EPIPE, never SIGPIPE.
    (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::vector<std::string> out(1);
    char c;
    while (static_cast<int>(out.size()) <= n && read(fd, &c, 1) == 1) {
      if (c == '\n') out.emplace_back();
      else out.back().push_back(c);
    }
    close(fd);
    out.resize(n);
    return out;
  }
  // The server's figures, read on its own thread.
  control::ServerStats stats_now() {
    std::promise<control::ServerStats> p;
    boost::asio::post(io, [&] { p.set_value(server->stats()); });
    return p.get_future().get();
  }
  // Connects and writes without ever reading.
  int connect_raw(const std::string& bytes) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    std::size_t off = 0;
    for (int i = 0; i < 2000 && off < bytes.size(); ++i) {
      auto n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n > 0) off += static_cast<std::size_t>(n);
      else std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(off, bytes.size());
    return fd;
  }
  static constexpr std::size_t kBig = 32 << 10;
  std::size_t max_request_bytes = 4096;
  std::size_t max_output_bytes = 4 << 20;
  std::string group;  // ServerOptions::group
  control::PushFn watcher;
  boost::asio::io_context io;
  std::unique_ptr<control::Server> server;
  std::thread thread;
  std::string path;
  std::atomic<int> handled{0};
};

// A small output bound, so a test can exceed it many times over.
struct SmallOutputServerFixture : ServerFixture {
  SmallOutputServerFixture() { max_output_bytes = 256 << 10; }
};

// The agent's own request limit, so a hostile request can be as large as the agent would read.
struct FullSizeServerFixture : ServerFixture {
  FullSizeServerFixture() { max_request_bytes = 1 << 20; }
};

}  // namespace topowall::ctltest
