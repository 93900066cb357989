#include "metrics/http_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>

#include "metrics/radar_page.hpp"
#include "topowall/topology/metrics.hpp"

namespace topowall::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

Result<tcp::endpoint> parse_listen(const std::string& spec) {
  const auto bad = [&](const std::string& why) {
    return Error{"--metrics-listen '" + spec + "': " + why + " (expected HOST:PORT, [IPv6]:PORT or :PORT)"};
  };
  auto colon = spec.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = spec.substr(0, colon), port_s = spec.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (ec != std::errc() || p != port_s.data() + port_s.size() || port > 65535 || port_s.empty())
    return bad("port must be a number from 0 to 65535");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code aec;
  auto addr = asio::ip::make_address(host, aec);
  if (aec) return bad("'" + host + "' is not an IP address");
  return tcp::endpoint(addr, static_cast<std::uint16_t>(port));
}

struct MetricsServer::Conn : std::enable_shared_from_this<Conn> {
  Conn(MetricsServer& s, tcp::socket sock) : server(s), alive(s.alive_), stream(std::move(sock)) {}
  ~Conn() {
    if (*alive) --server.open_;
  }
  void read() {
    parser.emplace();
    parser->body_limit(0);  // GET only: a body is a bad request
    parser->header_limit(8192);
    stream.expires_after(std::chrono::seconds(5));  // a slow or idle client does not hold a slot
    http::async_read(stream, buf, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!*self->alive) return;
      if (ec) {
        if (ec != http::error::end_of_stream) ++self->server.stats_.rejected;
        return;
      }
      self->respond();
    });
  }
  void respond() {
    const auto& req = parser->get();
    const std::string target(req.target());
    if (req.method() == http::verb::get && server.radar_ && target.substr(0, target.find('?')) == "/radar/events") {
      ++server.stats_.requests;
      stream.expires_never();  // a stream lives as long as the page: the radar watches it
      return server.radar_->add(stream.release_socket());
    }
    auto r = server.route(std::string(req.method_string()), target);
    res.version(req.version());
    res.result(r.code);
    res.set(http::field::content_type, r.type);
    res.set(http::field::server, "topowalld");
    // Every answer: no inline or foreign code, no sniffing a type, nothing cached (the graph changes).
    res.set("Content-Security-Policy", std::string(kRadarCsp));
    res.set("X-Content-Type-Options", "nosniff");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);  // one request per connection: scrapes are seconds apart
    if (req.method() != http::verb::head) res.body() = std::move(r.body);
    res.prepare_payload();
    http::async_write(stream, res, [self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }
  MetricsServer& server;
  std::shared_ptr<bool> alive;
  beast::tcp_stream stream;
  beast::flat_buffer buf{16384};
  std::optional<http::request_parser<http::empty_body>> parser;
  http::response<http::string_body> res;
};

MetricsServer::MetricsServer(asio::io_context& io, std::function<nlohmann::json()> status, int max_connections)
    : io_(io), status_(std::move(status)), max_connections_(max_connections) {}

MetricsServer::~MetricsServer() {
  stop();
  *alive_ = false;
}

Status MetricsServer::start(const std::string& listen) {
  auto ep = parse_listen(listen);
  if (!ep) return ep.error();
  auto acc = std::make_unique<tcp::acceptor>(io_);
  boost::system::error_code ec;
  acc->open(ep->protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(*ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error{"metrics endpoint cannot listen on " + listen + ": " + ec.message() +
                 " (is the port in use? pick another with --metrics-listen)"};
  acceptor_ = std::move(acc);
  spdlog::info("metrics on http://{}:{}/metrics", ep->address().to_string(), port());
  if (radar_model_) spdlog::info("radar on http://{}:{}/radar", ep->address().to_string(), port());
  accept();
  return ok_status();
}

void MetricsServer::set_radar(std::function<nlohmann::json()> model) {
  radar_model_ = model;
  radar_ = std::make_unique<RadarStream>(io_, std::move(model));
}

void MetricsServer::stop() {
  if (radar_) radar_->stop();
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
    acceptor_.reset();
  }
}

std::uint16_t MetricsServer::port() const {
  boost::system::error_code ec;
  return acceptor_ ? acceptor_->local_endpoint(ec).port() : 0;
}

void MetricsServer::accept() {
  acceptor_->async_accept([this, alive = alive_](boost::system::error_code ec, tcp::socket sock) {
    if (!*alive || !acceptor_) return;
    if (!ec) {
      if (open_ >= max_connections_) {
        ++stats_.rejected;  // closing at once: the scraper retries at its next interval
      } else {
        ++open_;
        std::make_shared<Conn>(*this, std::move(sock))->read();
      }
    }
    accept();
  });
}

MetricsServer::Reply MetricsServer::route(const std::string& method, const std::string& target) {
  ++stats_.requests;
  if (method != "GET" && method != "HEAD") {
    ++stats_.rejected;
    return {405, "text/plain", "only GET and HEAD\n"};
  }
  const auto path = target.substr(0, target.find('?'));
  if (radar_model_ && (path == "/radar" || path.starts_with("/radar.") || path.starts_with("/radar/")))
    return route_radar(path);
  if (path != "/metrics" && path != "/healthz") {
    ++stats_.rejected;
    return {404, "text/plain", radar_model_ ? "not found: try /radar, /metrics or /healthz\n"
                                            : "not found: try /metrics or /healthz\n"};
  }
  return metrics_reply(path);
}

MetricsServer::Reply MetricsServer::route_radar(const std::string& path) {
  if (path == "/radar") return {200, "text/html; charset=utf-8", radar_served_page()};
  if (path == "/radar.js") return {200, "text/javascript; charset=utf-8", std::string(radar_js())};
  if (path == "/radar.css") return {200, "text/css; charset=utf-8", std::string(radar_css())};
  if (path == "/radar/model.json") {
    try {
      return {200, "application/json", radar_model_().dump()};
    } catch (const std::exception& e) {  // never out of the loop's callback
      ++stats_.errors;
      spdlog::error("radar: building the model failed: {}", e.what());
      return {500, "text/plain", "radar model unavailable\n"};
    }
  }
  ++stats_.rejected;
  return {404, "text/plain", "not found: try /radar\n"};
}

MetricsServer::Reply MetricsServer::metrics_reply(const std::string& path) {
  nlohmann::json status;
  try {
    status = status_();
  } catch (const std::exception& e) {  // never out of the loop's callback
    ++stats_.errors;
    spdlog::error("metrics: reading the agent's status failed: {}", e.what());
    return {500, "text/plain", "status unavailable\n"};
  }
  if (path == "/healthz") {
    // Ready when the ruleset is in the kernel: before that, nothing this agent owns is enforcing.
    if (!status.value("ruleset_applied", false)) return {503, "text/plain", "ruleset not applied yet\n"};
    if (status.value("ruleset_degraded", false))
      return {503, "text/plain", "ruleset programming failed; retrying (see the agent's log)\n"};
    if (!status.value("bridge_netfilter", true))
      return {503, "text/plain", "bridged traffic bypasses the firewall: br_netfilter off (see the agent's log)\n"};
    return {200, "text/plain", "ok\n"};
  }
  auto body = topology::prometheus_text(status);
  body += "# HELP topowall_metrics_requests_total requests to this endpoint\n"
          "# TYPE topowall_metrics_requests_total counter\n"
          "topowall_metrics_requests_total " + std::to_string(stats_.requests) + "\n" +
          "# HELP topowall_metrics_rejected_total requests to this endpoint refused\n"
          "# TYPE topowall_metrics_rejected_total counter\n"
          "topowall_metrics_rejected_total " + std::to_string(stats_.rejected) + "\n";
  if (radar_) {
    const auto& r = radar_->stats();
    body += "# HELP topowall_radar_streams radar pages watching the live stream now\n"
            "# TYPE topowall_radar_streams gauge\n"
            "topowall_radar_streams " + std::to_string(radar_->clients()) + "\n" +
            "# HELP topowall_radar_streams_refused_total radar streams refused over the limit (8)\n"
            "# TYPE topowall_radar_streams_refused_total counter\n"
            "topowall_radar_streams_refused_total " + std::to_string(r.clients_refused) + "\n" +
            "# HELP topowall_radar_model_errors_total radar models that could not be built\n"
            "# TYPE topowall_radar_model_errors_total counter\n"
            "topowall_radar_model_errors_total " + std::to_string(r.errors + stats_.errors) + "\n";
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", std::move(body)};
}

}  // namespace topowall::metrics
