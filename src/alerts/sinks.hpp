// Where alerts go: the agent's log, a JSON-lines file, syslog, a webhook.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "common/fd.hpp"
#include "common/http_post.hpp"
#include "topowall/result.hpp"
#include "topowall/topology/alerts.hpp"

namespace topowall::alerts {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void send(const topology::Alert& a) = 0;
  virtual std::uint64_t dropped() const { return 0; }
};

class LogSink final : public Sink {
 public:
  void send(const topology::Alert& a) override;
};

// Appends one JSON object per line. Follows log rotation: when the path no
// longer names the file it has open (moved or deleted), it reopens the path.
class JsonlSink final : public Sink {
 public:
  explicit JsonlSink(std::string path);
  void send(const topology::Alert& a) override;
  std::uint64_t dropped() const override { return dropped_; }
  // Opens (or reopens) the path; the error says what to fix.
  [[nodiscard]] Status open();

 private:
  std::string path_;
  UniqueFd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t dropped_ = 0;
};

class SyslogSink final : public Sink {
 public:
  SyslogSink();
  void send(const topology::Alert& a) override;
};

// POSTs each alert as JSON to http://host:port/path; a bounded queue, one
// request at a time, so a slow receiver costs memory up to the bound, then drops (counted).
class WebhookSink final : public Sink {
 public:
  WebhookSink(boost::asio::io_context& io, std::string url);
  void send(const topology::Alert& a) override;
  std::uint64_t dropped() const override { return dropped_; }
  bool valid() const { return url_.has_value(); }

 private:
  void pump();
  boost::asio::io_context& io_;
  std::optional<HttpUrl> url_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::deque<std::string> queue_;
  bool busy_ = false;
  std::uint64_t dropped_ = 0;
};

// Parses "--alert-sink" values: log, jsonl:/path, syslog, webhook:http://...
std::unique_ptr<Sink> make_sink(boost::asio::io_context& io, const std::string& spec, std::string& error);

}  // namespace topowall::alerts
