#include "common/http_post.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>

namespace topowall {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

std::optional<HttpUrl> parse_http_url(const std::string& url, const std::string& default_port) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  HttpUrl u;
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  u.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  u.port = colon == std::string::npos ? default_port : hostport.substr(colon + 1);
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

void http_post(asio::io_context& io, const HttpUrl& url, std::string target, std::string json_body,
               std::chrono::seconds timeout, std::function<void(Result<HttpReply>)> done) {
  struct Op {
    explicit Op(asio::io_context& io) : resolver(io), stream(io) {}
    tcp::resolver resolver;
    beast::tcp_stream stream;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    std::function<void(Result<HttpReply>)> done;
  };
  auto op = std::make_shared<Op>(io);
  op->req = {http::verb::post, target, 11};
  op->req.set(http::field::host, url.host);
  op->req.set(http::field::content_type, "application/json");
  op->req.body() = std::move(json_body);
  op->req.prepare_payload();
  op->done = std::move(done);
  op->stream.expires_after(timeout);
  auto failed = [op](const char* step, const beast::error_code& ec) { op->done(Error{std::string(step) + ": " + ec.message()}); };
  op->resolver.async_resolve(url.host, url.port, [op, failed](beast::error_code ec, tcp::resolver::results_type r) {
    if (ec) return failed("resolve", ec);
    op->stream.async_connect(r, [op, failed](beast::error_code ec, auto) {
      if (ec) return failed("connect", ec);
      http::async_write(op->stream, op->req, [op, failed](beast::error_code ec, std::size_t) {
        if (ec) return failed("send", ec);
        http::async_read(op->stream, op->buf, op->res, [op, failed](beast::error_code ec, std::size_t) {
          if (ec) return failed("receive", ec);
          op->done(HttpReply{op->res.result_int(), std::move(op->res.body())});
        });
      });
    });
  });
}

}  // namespace topowall
