#include "alerts/sinks.hpp"

#include "common/http_post.hpp"
#include "common/http_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace topowall::alerts {

namespace asio = boost::asio;

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

WebhookSink::WebhookSink(asio::io_context& io, std::string url) : io_(io), url_(parse_http_url(url, "")) {
  if (url_ && url_->port.empty()) url_->port = url_->tls ? "443" : "80";
  if (url_ && url_->tls) {
    auto ctx = make_tls_context({});  // the system's CA store
    if (ctx) tls_ = *ctx;
    else url_.reset();
  }
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
  http_post(io_, *url_, url_->path, queue_.front(), std::chrono::seconds(5), [this](Result<HttpReply> r) {
    if (!r || r->status >= 300) ++dropped_;
    queue_.pop_front();
    pump();
  }, tls_);
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
    error = "webhook URL must be http://host[:port]/path or https://host[:port]/path";
    return nullptr;
  }
  error = "unknown alert sink '" + spec + "' (log, syslog, jsonl:/path, webhook:http://host:port/path)";
  return nullptr;
}

}  // namespace topowall::alerts
