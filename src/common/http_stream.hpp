// An HTTP client connection over TCP or TLS, one type for both: the webhook sink and the etcd store
// speak to either without duplicating their request logic.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "common/http_post.hpp"
#include "topowall/result.hpp"

namespace topowall {

// Loads the files; the error names the file and what was wrong with it.
[[nodiscard]] Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const TlsFiles& files);

class HttpStream {
 public:
  using Tcp = boost::beast::tcp_stream;
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  // `tls` null: plain TCP. Otherwise the server's certificate must verify against the CA and name `host`.
  HttpStream(boost::asio::io_context& io, const std::shared_ptr<boost::asio::ssl::context>& tls);

  // Resolve, connect and (TLS) handshake; `done` gets what failed, as "step: reason".
  void connect(const std::string& host, const std::string& port, std::function<void(Status)> done);
  Tcp& tcp() { return std::visit([](auto& s) -> Tcp& { return boost::beast::get_lowest_layer(s); }, stream_); }
  void close() {
    boost::beast::error_code ec;
    tcp().socket().close(ec);
  }

  template <class Message, class Handler>
  void async_write(Message& m, Handler&& h) {
    std::visit([&](auto& s) { boost::beast::http::async_write(s, m, std::forward<Handler>(h)); }, stream_);
  }
  template <class Buffer, class Message, class Handler>
  void async_read(Buffer& b, Message& m, Handler&& h) {
    std::visit([&](auto& s) { boost::beast::http::async_read(s, b, m, std::forward<Handler>(h)); }, stream_);
  }
  template <class Buffer, class Parser, class Handler>
  void async_read_some(Buffer& b, Parser& p, Handler&& h) {
    std::visit([&](auto& s) { boost::beast::http::async_read_some(s, b, p, std::forward<Handler>(h)); }, stream_);
  }

 private:
  boost::asio::ip::tcp::resolver resolver_;
  std::variant<Tcp, Tls> stream_;
};

}  // namespace topowall
