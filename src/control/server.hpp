// The agent's control socket: newline-delimited JSON requests on a unix socket.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "topowall/result.hpp"

namespace topowall::control {

inline constexpr int kProtocolVersion = 1;

struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  bool may_write = false;  // root or member of the configured group
  // A descriptor the client sent with this request (SCM_RIGHTS), lent for the call and closed after it
  // (dup it to keep it); -1 when none came. topology.import reads a graph from it, topology.export writes
  // into it: a graph of any size then never has to fit in one request or answer line.
  int passed_fd = -1;
};

// Returns the whole response object; a streaming call may keep `push` to send more lines later.
using PushFn = std::function<bool(const nlohmann::json&)>;
using Handler = std::function<nlohmann::json(const nlohmann::json& request, const Peer& peer, const PushFn& push)>;

struct ServerOptions {
  std::string path;
  std::string group;                      // may change state besides root; "" = root only
  std::size_t max_request_bytes = 1 << 20;
  int max_connections = 64;
  int max_requests_per_second = 200;      // per connection
  // Answers queued for one connection; at the bound the server stops reading its requests (and a stream
  // is cut off) until the client reads.
  std::size_t max_output_bytes = 4 << 20;
};

// Descriptors a connection may have received and not yet handed to a request; more is a hostile client
// (each one is a slot of the agent's descriptor table) and closes the connection.
inline constexpr std::size_t kMaxPassedFds = 2;

struct ServerStats {
  std::uint64_t connections = 0;
  std::uint64_t requests = 0;
  std::uint64_t rejected = 0;  // malformed, oversized, rate-limited, refused or too many descriptors
  std::uint64_t output_bytes = 0;  // answers queued now, all connections
  std::uint64_t output_peak = 0;   // the most one connection has had queued
  std::uint64_t paused = 0;        // times a connection's reading paused on a full queue
  std::uint64_t slow_closed = 0;   // streams closed because their client did not read
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions opts, Handler handler);
  ~Server();
  [[nodiscard]] Status start();
  void stop();
  const ServerStats& stats() const { return stats_; }

 private:
  struct Conn;
  void accept();

  boost::asio::io_context& io_;
  ServerOptions opts_;
  Handler handler_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  gid_t group_gid_ = 0;
  bool has_group_ = false;
  int open_conns_ = 0;
  ServerStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Error response helper shared by the server and the agent's dispatcher.
nlohmann::json error_response(const std::string& code, const std::string& message);

}  // namespace topowall::control
