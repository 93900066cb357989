#include "metrics/radar_stream.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>

#include "metrics/radar_page.hpp"

namespace topowall::metrics {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// A comment line this often keeps proxies from closing an idle stream and finds clients that left.
constexpr auto kHeartbeat = std::chrono::seconds(15);
}  // namespace

RadarStream::RadarStream(asio::io_context& io, std::function<nlohmann::json()> model,
                         std::chrono::milliseconds interval, std::size_t max_clients)
    : io_(io), model_(std::move(model)), interval_(interval), wait_(interval), max_clients_(max_clients), timer_(io) {}

RadarStream::~RadarStream() {
  *alive_ = false;
  stop();
}

void RadarStream::stop() {
  timer_.cancel();
  for (auto& c : clients_) {
    boost::system::error_code ec;
    c.sock.close(ec);
    c.dead = true;
  }
  // A client with a write in flight stays until its handler ran: the handler refers to it.
  std::erase_if(clients_, [](const Client& c) { return c.writing.empty(); });
}

bool RadarStream::build(std::string& event) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    event = "event: model\ndata: " + model_().dump() + "\n\n";  // dump() escapes newlines: one data line
  } catch (const std::exception& e) {  // never out of the loop's callback
    ++stats_.errors;
    spdlog::error("radar: building the model failed: {}", e.what());
    return false;
  }
  // Building takes at most a tenth of the loop: a 50 ms model is rebuilt every 500 ms at most.
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  wait_ = std::max(interval_, took * 10);
  return true;
}

void RadarStream::add(tcp::socket sock) {
  std::erase_if(clients_, [](const Client& c) { return c.dead && c.writing.empty(); });
  if (clients_.size() >= max_clients_) {
    ++stats_.clients_refused;
    static constexpr std::string_view busy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nRetry-After: 5\r\n"
        "Content-Length: 45\r\n\r\ntoo many radar streams open; close one first\n";
    boost::system::error_code ec;
    asio::write(sock, asio::buffer(busy), ec);  // small: fits the socket buffer, never blocks for long
    return;
  }
  std::string event;
  if (!build(event)) event = "event: error\ndata: {\"error\":\"the model could not be built; see the agent's log\"}\n\n";
  last_hash_ = std::hash<std::string>{}(event);
  last_sent_ = std::chrono::steady_clock::now();
  auto& c = clients_.emplace_back(Client{std::move(sock), {}, {}, false});
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: " +
                     std::string(kRadarCsp) + "\r\nServer: topowalld\r\nConnection: close\r\n\r\nretry: 1000\n\n";
  send(c, head + event);
  arm();
}

void RadarStream::arm() {
  if (armed_ || clients_.empty()) return;
  armed_ = true;
  timer_.expires_after(wait_);
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!*alive) return;
    armed_ = false;
    if (!ec) tick();
  });
}

void RadarStream::tick() {
  std::erase_if(clients_, [](const Client& c) { return c.dead && c.writing.empty(); });
  if (clients_.empty()) return;  // nobody watches: build nothing until the next client
  std::string event;
  if (build(event)) {
    const auto h = std::hash<std::string>{}(event);
    const auto now = std::chrono::steady_clock::now();
    if (h != last_hash_) {
      last_hash_ = h;
      last_sent_ = now;
      for (auto& c : clients_) send(c, event);
    } else if (now - last_sent_ >= kHeartbeat) {
      last_sent_ = now;
      for (auto& c : clients_) send(c, ":\n\n");
    }
  }
  arm();
}

void RadarStream::send(Client& c, std::string data) {
  if (c.dead) return;
  ++stats_.updates;
  if (!c.writing.empty()) {
    if (!c.next.empty()) ++stats_.coalesced;  // a slow reader: only the newest model waits
    c.next = std::move(data);
    return;
  }
  c.writing = std::move(data);
  write(c);
}

void RadarStream::write(Client& c) {
  asio::async_write(c.sock, asio::buffer(c.writing), [this, &c, alive = alive_](boost::system::error_code ec, std::size_t) {
    if (!*alive) return;
    c.writing.clear();
    if (ec) {
      c.dead = true;  // the browser left: removed at the next tick
      c.next.clear();
      return;
    }
    if (!c.next.empty()) {
      c.writing = std::move(c.next);
      c.next.clear();
      write(c);
    }
  });
}

}  // namespace topowall::metrics
