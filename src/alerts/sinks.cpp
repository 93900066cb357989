#include "alerts/sinks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace topowall::alerts {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

void LogSink::send(const topology::Alert& a) { spdlog::warn("alert: {}", topology::alert_text(a)); }

JsonlSink::JsonlSink(std::string path) : path_(std::move(path)) {}  // opened by make_sink or the first send

Status JsonlSink::open() {
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  struct stat st{};
  if (!fd || fstat(fd.get(), &st) != 0)
    return Error{"alert file " + path_ + ": " + std::strerror(errno) +
                 " (does its directory exist, and may topowalld write there?)", errno};
  fd_ = std::move(fd);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return ok_status();
}

void JsonlSink::send(const topology::Alert& a) {
  // Rotation (rename and recreate, or delete): the path names another file, or none.
  struct stat st{};
  if (!fd_ || stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
    if (auto r = open(); !r) {
      ++dropped_;
      return;
    }
  }
  // One write per line with O_APPEND: lines never interleave, and copytruncate rotation works too.
  const auto line = topology::alert_to_json(a).dump() + "\n";
  if (::write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) ++dropped_;
}

SyslogSink::SyslogSink() { openlog("topowalld", LOG_PID | LOG_NDELAY, LOG_DAEMON); }

void SyslogSink::send(const topology::Alert& a) {
  syslog(a.blocked ? LOG_WARNING : LOG_NOTICE, "%s", topology::alert_text(a).c_str());
}

WebhookSink::WebhookSink(asio::io_context& io, std::string url) : io_(io) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  path_ = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  host_ = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  port_ = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
}

void WebhookSink::send(const topology::Alert& a) {
  if (queue_.size() >= 10000) {
    ++dropped_;
    return;
  }
  queue_.push_back(topology::alert_to_json(a).dump());
  if (!busy_) pump();
}

void WebhookSink::pump() {
  if (queue_.empty()) {
    busy_ = false;
    return;
  }
  busy_ = true;
  struct Op {
    explicit Op(asio::io_context& io) : resolver(io), stream(io) {}
    asio::ip::tcp::resolver resolver;
    beast::tcp_stream stream;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    beast::flat_buffer buf;
  };
  auto op = std::make_shared<Op>(io_);
  op->req = {http::verb::post, path_, 11};
  op->req.set(http::field::host, host_);
  op->req.set(http::field::content_type, "application/json");
  op->req.body() = queue_.front();
  op->req.prepare_payload();
  auto done = [this, op](bool ok) {
    if (!ok) ++dropped_;
    queue_.pop_front();
    pump();
  };
  op->stream.expires_after(std::chrono::seconds(5));
  op->resolver.async_resolve(host_, port_, [op, done](beast::error_code ec, asio::ip::tcp::resolver::results_type r) {
    if (ec) return done(false);
    op->stream.async_connect(r, [op, done](beast::error_code ec, auto) {
      if (ec) return done(false);
      http::async_write(op->stream, op->req, [op, done](beast::error_code ec, std::size_t) {
        if (ec) return done(false);
        http::async_read(op->stream, op->buf, op->res, [op, done](beast::error_code ec, std::size_t) {
          done(!ec && op->res.result_int() < 300);
        });
      });
    });
  });
}

std::unique_ptr<Sink> make_sink(asio::io_context& io, const std::string& spec, std::string& error) {
  if (spec == "log") return std::make_unique<LogSink>();
  if (spec == "syslog") return std::make_unique<SyslogSink>();
  if (spec.rfind("jsonl:", 0) == 0 && spec.size() > 6) {
    auto j = std::make_unique<JsonlSink>(spec.substr(6));
    if (auto st = j->open(); !st) {  // a typo in the path is a start-up error, not silent drops
      error = st.error().message;
      return nullptr;
    }
    return j;
  }
  if (spec.rfind("webhook:", 0) == 0) {
    auto w = std::make_unique<WebhookSink>(io, spec.substr(8));
    if (w->valid()) return w;
    error = "webhook URL must be http://host[:port]/path";
    return nullptr;
  }
  error = "unknown alert sink '" + spec + "' (log, syslog, jsonl:/path, webhook:http://host:port/path)";
  return nullptr;
}

}  // namespace topowall::alerts
