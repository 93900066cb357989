// One HTTP/1.1 POST on its own connection, with a deadline: alert webhooks and etcd's JSON API.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "topowall/result.hpp"

namespace topowall {

// CA to verify the server with, and an optional client certificate (etcd's client-cert-auth).
struct TlsFiles {
  std::string ca, cert, key;
};

struct HttpUrl {
  std::string host, port, path;
  bool tls = false;  // https
};
// "http[s]://host[:port][/path]"; nullopt for anything else. `default_port` applies to both schemes.
std::optional<HttpUrl> parse_http_url(const std::string& url, const std::string& default_port);

struct HttpReply {
  unsigned status = 0;
  std::string body;
};
// `done` runs on the loop exactly once: the reply, or what failed (resolve, connect, send, receive, timeout).
// `tls` is required for an https URL (make_tls_context) and ignored otherwise. `authorization`, when not
// empty, is sent as the Authorization header (etcd's auth token).
void http_post(boost::asio::io_context& io, const HttpUrl& url, std::string target, std::string json_body,
               std::chrono::seconds timeout, std::function<void(Result<HttpReply>)> done,
               const std::shared_ptr<boost::asio::ssl::context>& tls = nullptr, const std::string& authorization = "");

}  // namespace topowall
