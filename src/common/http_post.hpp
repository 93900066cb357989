// One HTTP/1.1 POST on its own connection, with a deadline: alert webhooks and etcd's JSON API.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "topowall/result.hpp"

namespace topowall {

struct HttpUrl {
  std::string host, port, path;
};
// "http://host[:port][/path]"; nullopt for anything else (no TLS here).
std::optional<HttpUrl> parse_http_url(const std::string& url, const std::string& default_port);

struct HttpReply {
  unsigned status = 0;
  std::string body;
};
// `done` runs on the loop exactly once: the reply, or what failed (resolve, connect, send, receive, timeout).
void http_post(boost::asio::io_context& io, const HttpUrl& url, std::string target, std::string json_body,
               std::chrono::seconds timeout, std::function<void(Result<HttpReply>)> done);

}  // namespace topowall
