// A small HTTP endpoint for Prometheus (/metrics), probes (/healthz) and the radar page (/radar).
// Read-only: it serves the agent's status and graph, and nothing that changes state.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "metrics/radar_stream.hpp"
#include "topowall/result.hpp"

namespace topowall::metrics {

// "127.0.0.1:9617", "[::1]:9617", ":9617" (every IPv4 address); port 0 picks a free one.
[[nodiscard]] Result<boost::asio::ip::tcp::endpoint> parse_listen(const std::string& spec);

struct HttpStats {
  std::uint64_t requests = 0;
  std::uint64_t rejected = 0;  // bad requests, unknown paths, over the connection limit, timeouts
  std::uint64_t errors = 0;    // the status callback threw
};

class MetricsServer {
 public:
  // `status` returns the control API's status result (called on the loop, per request).
  MetricsServer(boost::asio::io_context& io, std::function<nlohmann::json()> status, int max_connections = 16);
  ~MetricsServer();
  // Serve the radar (/radar, /radar.js, /radar.css, /radar/model.json, /radar/events) from `model`
  // (topology::radar_model's document, called on the loop). Without it those paths are 404.
  void set_radar(std::function<nlohmann::json()> model);
  [[nodiscard]] Status start(const std::string& listen);
  void stop();
  std::uint16_t port() const;  // the bound port (after start)
  const HttpStats& stats() const { return stats_; }
  const RadarStream* radar() const { return radar_.get(); }

 private:
  struct Conn;
  void accept();
  // Method, target -> status code, content type, body.
  struct Reply {
    unsigned code;
    std::string type, body;
  };
  Reply route(const std::string& method, const std::string& target);
  Reply route_radar(const std::string& path);
  Reply metrics_reply(const std::string& path);

  boost::asio::io_context& io_;
  std::function<nlohmann::json()> status_;
  int max_connections_;
  int open_ = 0;
  std::function<nlohmann::json()> radar_model_;
  std::unique_ptr<RadarStream> radar_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  HttpStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace topowall::metrics
