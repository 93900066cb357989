// etcd for the cluster sections: a real etcd on loopback with its own data directory, read through
// curl for rare calls, and a keep-alive client of its JSON gateway for the load generator.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <string>
#include <vector>

#include "common.hpp"

namespace topowall::bench {

// etcd on loopback; stopped and its data removed by the destructor. `url` is the clients' URL (the
// agent's); `extra_port`, when set, is a second client listener (the load generator's), so that the
// agent's can be cut off alone.
struct Etcd {
  pid_t pid = 0;
  std::string dir = "/tmp/topowall-bench-etcd", url = "http://127.0.0.1:24990";
  std::string extra_port;
  bool start();
  json call(const std::string& path, const json& body) const;  // one request through curl; {} on failure
  ~Etcd();
};

// One kept-alive HTTP/1.1 connection to etcd's JSON gateway on 127.0.0.1:port: the load generator's
// client (a fresh curl per write would cost more than the agent under test). Not thread-safe: one per
// thread.
class EtcdConn {
 public:
  explicit EtcdConn(std::string port);
  // POST `body` (JSON) to `path`; the answer's JSON, or an Error (connection, HTTP status).
  [[nodiscard]] Result<json> post(const std::string& path, const json& body);

 private:
  [[nodiscard]] Result<json> once(const std::string& path, const std::string& body);
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  std::string port_;
  bool connected_ = false;
};

// etcd's JSON API keys and values are base64.
std::string b64(const std::string& s);

}  // namespace topowall::bench
