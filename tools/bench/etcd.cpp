#include "etcd.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "cluster/etcd_codec.hpp"

extern char** environ;

namespace topowall::bench {

using namespace topowall::testing;
namespace http = boost::beast::http;

bool Etcd::start() {
  sh("rm -rf " + dir);
  mkdir(dir.c_str(), 0700);
  const std::string peer = "http://127.0.0.1:24991";
  std::string listen = url;
  if (!extra_port.empty()) listen += ",http://127.0.0.1:" + extra_port;
  std::vector<std::string> args = {"etcd", "--data-dir", dir + "/data", "--listen-client-urls", listen,
                                   "--advertise-client-urls", url, "--listen-peer-urls", peer,
                                   "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=" + peer};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (dir + "/log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const bool spawned = posix_spawnp(&pid, "etcd", &fa, nullptr, argv.data(), environ) == 0;
  posix_spawn_file_actions_destroy(&fa);
  if (!spawned) pid = 0;
  for (int i = 0; spawned && i < 100; ++i) {
    if (sh("curl -sf " + url + "/health >/dev/null") == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

json Etcd::call(const std::string& path, const json& body) const {
  auto j = json::parse(sh_out("curl -s -m 2 -X POST " + url + path + " -d '" + body.dump() + "'"), nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

Etcd::~Etcd() {
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
  sh("rm -rf " + dir);
}

EtcdConn::EtcdConn(std::string port) : stream_(io_), port_(std::move(port)) {}

Result<json> EtcdConn::post(const std::string& path, const json& body) {
  const auto text = body.dump();
  auto r = once(path, text);
  if (!r && !connected_) r = once(path, text);  // etcd closed an idle connection: once more on a new one
  return r;
}

Result<json> EtcdConn::once(const std::string& path, const std::string& body) {
  boost::beast::error_code ec;
  if (!connected_) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"),
                                      static_cast<unsigned short>(std::stoi(port_)));
    stream_.socket().close(ec);
    stream_.connect(ep, ec);
    if (ec) return Error{"connect to etcd: " + ec.message()};
    stream_.socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
    connected_ = true;
  }
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream_, req, ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);  // a full range read of 100k endpoints is tens of MB
  boost::beast::flat_buffer buf;
  if (!ec) http::read(stream_, buf, parser, ec);
  if (ec) {
    connected_ = false;
    return Error{"etcd request " + path + ": " + ec.message()};
  }
  auto res = parser.release();
  if (!res.keep_alive()) connected_ = false;
  auto j = json::parse(res.body(), nullptr, false);
  if (res.result_int() != 200 || j.is_discarded())
    return Error{"etcd answered " + std::to_string(res.result_int()) + " to " + path + ": " + res.body().substr(0, 200)};
  return j;
}

std::string b64(const std::string& s) { return cluster::base64_encode(s); }

}  // namespace topowall::bench
