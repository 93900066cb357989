#include "common/http_post.hpp"
#include "common/http_stream.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>

namespace topowall {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::optional<HttpUrl> parse_http_url(const std::string& url, const std::string& default_port) {
  HttpUrl u;
  std::string rest;
  if (url.rfind("http://", 0) == 0) rest = url.substr(7);
  else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    u.tls = true;
  } else {
    return std::nullopt;
  }
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  u.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  u.port = colon == std::string::npos ? default_port : hostport.substr(colon + 1);
  if (u.host.empty() || (u.port.empty() && !default_port.empty())) return std::nullopt;
  return u;
}

void http_post(asio::io_context& io, const HttpUrl& url, std::string target, std::string json_body,
               std::chrono::seconds timeout, std::function<void(Result<HttpReply>)> done,
               const std::shared_ptr<asio::ssl::context>& tls, const std::string& authorization) {
  if (url.tls && !tls) return done(Error{"https needs a TLS context (CA file)"});
  struct Op {
    Op(asio::io_context& io, const std::shared_ptr<asio::ssl::context>& tls) : stream(io, tls) {}
    HttpStream stream;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    std::function<void(Result<HttpReply>)> done;
  };
  auto op = std::make_shared<Op>(io, url.tls ? tls : nullptr);
  op->req = {http::verb::post, target, 11};
  op->req.set(http::field::host, url.host);
  op->req.set(http::field::content_type, "application/json");
  if (!authorization.empty()) op->req.set(http::field::authorization, authorization);
  op->req.body() = std::move(json_body);
  op->req.prepare_payload();
  op->done = std::move(done);
  op->stream.tcp().expires_after(timeout);  // the whole exchange, handshake included
  op->stream.connect(url.host, url.port, [op](Status st) {
    if (!st) return op->done(st.error());
    op->stream.async_write(op->req, [op](beast::error_code ec, std::size_t) {
      if (ec) return op->done(Error{"send: " + ec.message()});
      op->stream.async_read(op->buf, op->res, [op](beast::error_code ec, std::size_t) {
        if (ec) return op->done(Error{"receive: " + ec.message()});
        op->done(HttpReply{op->res.result_int(), std::move(op->res.body())});
      });
    });
  });
}

}  // namespace topowall
