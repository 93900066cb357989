#include "common/http_stream.hpp"

#include <openssl/ssl.h>

namespace topowall {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using asio::ip::tcp;

Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsFiles& f) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (f.ca.empty()) ctx->set_default_verify_paths(ec);
  else ctx->load_verify_file(f.ca, ec);
  if (ec) return Error{"CA file '" + f.ca + "': " + ec.message() + " (a PEM file of the CA that signed the server)"};
  if (f.cert.empty() != f.key.empty()) return Error{"a client certificate needs both its certificate and its key file"};
  if (!f.cert.empty()) {
    ctx->use_certificate_chain_file(f.cert, ec);
    if (ec) return Error{"client certificate '" + f.cert + "': " + ec.message() + " (a PEM certificate)"};
    ctx->use_private_key_file(f.key, ssl::context::pem, ec);
    if (ec) return Error{"client key '" + f.key + "': " + ec.message() + " (a PEM key matching the certificate)"};
  }
  return ctx;
}

HttpStream::HttpStream(asio::io_context& io, const std::shared_ptr<ssl::context>& tls)
    : resolver_(io),
      stream_(tls ? std::variant<Tcp, Tls>(std::in_place_type<Tls>, io, *tls)
                  : std::variant<Tcp, Tls>(std::in_place_type<Tcp>, io)) {}

void HttpStream::connect(const std::string& host, const std::string& port, std::function<void(Status)> done) {
  auto fail = [done](const char* step, const beast::error_code& ec) { done(Error{std::string(step) + ": " + ec.message()}); };
  resolver_.async_resolve(host, port, [this, host, done, fail](beast::error_code ec, tcp::resolver::results_type r) {
    if (ec) return fail("resolve", ec);
    tcp().async_connect(r, [this, host, done, fail](beast::error_code ec, auto) {
      if (ec) return fail("connect", ec);
      auto* tls = std::get_if<Tls>(&stream_);
      if (!tls) return done(ok_status());
      // SNI, and the certificate must name the host we asked for.
      SSL_set_tlsext_host_name(tls->native_handle(), host.c_str());
      tls->set_verify_callback(ssl::host_name_verification(host));
      tls->async_handshake(ssl::stream_base::client, [done, fail](beast::error_code ec) {
        if (ec) return fail("TLS handshake", ec);
        done(ok_status());
      });
    });
  });
}

}  // namespace topowall
