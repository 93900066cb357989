#include "runtime/docker_client.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "runtime/docker_json.hpp"
#include "runtime/host_netns.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::runtime {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Stream = beast::basic_stream<local, asio::any_io_executor, beast::unlimited_rate_policy>;
using nlohmann::json;

namespace {
constexpr const char* kApi = "/v1.41";
// One event line at most (docker's and podman's are under 4 KiB): a stream that never ends its line
// must not grow the buffer without bound.
constexpr std::size_t kMaxEventLine = 1 << 20;

http::request<http::empty_body> make_get(const std::string& target) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "topowalld");
  return req;
}

// The runtime gave no answer at all (refused, hung up, too slow): `code` says so (an errno, EIO when the
// failure was not the kernel's), where an answer the runtime did give (a 404, a malformed body) has 0.
Error no_answer(std::string message, const beast::error_code& ec) {
  return Error{std::move(message), ec.category() == boost::system::system_category() && ec.value() ? ec.value() : EIO};
}

struct GetOp {
  explicit GetOp(asio::io_context& io) : stream(io) {}
  Stream stream;
  beast::flat_buffer buf;
  http::request<http::empty_body> req;
  http::response_parser<http::string_body> parser;
};
}  // namespace

struct DockerClient::EventStream {
  explicit EventStream(asio::io_context& io) : stream(io) {}
  Stream stream;
  beast::flat_buffer buf;
  http::request<http::empty_body> req;
  http::response_parser<http::string_body> parser;
};

DockerClient::DockerClient(asio::io_context& io, std::string socket_path, std::chrono::milliseconds timeout)
    : io_(io), socket_path_(std::move(socket_path)), timeout_(timeout), retry_(io) {}

DockerClient::~DockerClient() {
  stop();
  *alive_ = false;
}

void DockerClient::start(DiscoveryHandler handler) {
  handler_ = std::move(handler);
  stopped_ = false;
  connect_events();
}

void DockerClient::stop() {
  stopped_ = true;
  retry_.cancel();
  if (events_) {
    beast::error_code ec;
    events_->stream.socket().close(ec);
    events_.reset();
  }
}

void DockerClient::get(const std::string& target, std::function<void(Result<json>)> cb) {
  auto op = std::make_shared<GetOp>(io_);
  op->req = make_get(target);
  op->parser.body_limit(64 << 20);
  op->stream.expires_after(timeout_);
  op->stream.async_connect(local::endpoint(socket_path_), [this, op, cb](beast::error_code ec) {
    if (ec) {
      cb(no_answer("connect to runtime API at " + socket_path_ + ": " + ec.message() +
                       " (is dockerd or `podman system service` running? check --runtime-socket)",
                   ec));
      return;
    }
    http::async_write(op->stream, op->req, [op, cb](beast::error_code ec, std::size_t) {
      if (ec) {
        cb(no_answer("runtime API request: " + ec.message(), ec));
        return;
      }
      http::async_read(op->stream, op->buf, op->parser, [op, cb](beast::error_code ec, std::size_t) {
        if (ec) {
          cb(no_answer("runtime API response: " + ec.message(), ec));
          return;
        }
        auto& res = op->parser.get();
        if (res.result_int() != 200) {
          cb(Error{"runtime API " + std::string(op->req.target()) + " answered " +
                   std::to_string(res.result_int()) + ": " + res.body().substr(0, 200)});
          return;
        }
        auto j = topology::parse_json(res.body());
        if (!j) {
          cb(Error{"runtime API answer to " + std::string(op->req.target()) + " is " + j.error().message});
          return;
        }
        cb(std::move(*j));
      });
    });
  });
}

void DockerClient::connect_events() {
  // Follow events first, then list: nothing that starts in between is missed.
  auto ev = std::make_shared<EventStream>(io_);
  events_ = ev;
  ++generation_;
  ev->req = make_get(std::string(kApi) + "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
  ev->parser.body_limit(boost::none);
  ev->stream.expires_after(timeout_);
  auto alive = alive_;
  ev->stream.async_connect(local::endpoint(socket_path_), [this, ev, alive](beast::error_code ec) {
    if (!*alive || stopped_) return;
    if (ec) {
      spdlog::warn("runtime API at {} unreachable: {}; retrying (is the runtime running?)", socket_path_,
                   ec.message());
      schedule_reconnect();
      return;
    }
    http::async_write(ev->stream, ev->req, [this, ev, alive](beast::error_code ec, std::size_t) {
      if (!*alive || stopped_) return;
      if (ec) return schedule_reconnect();
      http::async_read_header(ev->stream, ev->buf, ev->parser, [this, ev, alive](beast::error_code ec, std::size_t) {
        if (!*alive || stopped_) return;
        if (ec || ev->parser.get().result_int() != 200) {
          spdlog::warn("runtime event stream refused: {}", ec ? ec.message() : std::to_string(ev->parser.get().result_int()));
          return schedule_reconnect();
        }
        ev->stream.expires_never();
        stats_.connected = true;
        list_all();
        read_events(ev);
      });
    });
  });
}

void DockerClient::read_events(std::shared_ptr<EventStream> ev) {
  auto alive = alive_;
  http::async_read_some(ev->stream, ev->buf, ev->parser, [this, ev, alive](beast::error_code ec, std::size_t) {
    if (!*alive || stopped_ || events_ != ev) return;
    // Each event is one JSON document per line of the chunked body.
    auto& body = ev->parser.get().body();
    std::size_t pos;
    while ((pos = body.find('\n')) != std::string::npos) {
      std::string line = body.substr(0, pos);
      body.erase(0, pos + 1);
      if (!line.empty()) on_event_line(line);
    }
    if (body.size() > kMaxEventLine) {
      ++stats_.errors;
      spdlog::warn("runtime event stream sent {} bytes without ending a line; reconnecting", body.size());
      return schedule_reconnect();
    }
    if (ec || ev->parser.is_done()) {
      spdlog::warn("runtime event stream ended ({}); reconnecting", ec ? ec.message() : "closed");
      return schedule_reconnect();
    }
    read_events(ev);
  });
}

void DockerClient::schedule_reconnect() {
  stats_.connected = false;
  ++stats_.reconnects;
  if (events_) {
    beast::error_code ec;
    events_->stream.socket().close(ec);
    events_.reset();
  }
  retry_.expires_after(std::chrono::seconds(1));
  retry_.async_wait([this](beast::error_code ec) {
    if (!ec && !stopped_) connect_events();
  });
}

void DockerClient::on_event_line(const std::string& line) {
  ++stats_.events;
  auto j = topology::parse_json(line);
  if (!j) {
    ++stats_.errors;
    return;
  }
  auto ev = parse_event(*j);
  if (!ev) return;
  if (ev->action == ContainerEvent::Action::start || ev->action == ContainerEvent::Action::init) {
    inspect_and_upsert(ev->id, std::chrono::steady_clock::now(), ev->action == ContainerEvent::Action::init);
  } else if (ev->action == ContainerEvent::Action::stop) {
    host_network_.erase(ev->id);
    if (known_.erase(ev->id)) handler_(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, ev->id});
  }
}

void DockerClient::inspect_and_upsert(const std::string& id, std::chrono::steady_clock::time_point seen, bool init) {
  ++stats_.inspects;
  auto alive = alive_;
  get(std::string(kApi) + "/containers/" + id + "/json", [this, id, alive, seen, init, gen = generation_](Result<json> r) {
    if (!*alive) return;
    on_inspect(id, r, seen, init);
    if (!r) resync_if_unanswered(r.error(), gen, id);
  });
}

void DockerClient::on_inspect(const std::string& id, const Result<json>& r, std::chrono::steady_clock::time_point seen,
                              bool init) {
  try {  // an asio callback: whatever the runtime sent, nothing may escape into io_context::run
    if (!r) {
      ++stats_.errors;
      spdlog::debug("inspect {}: {}", id, r.error().message);
      return;
    }
    if (shares_host_network(*r)) return skip_host_network(id, "NetworkMode host");
    auto ep = parse_inspect(*r);
    if (!ep) {
      ++stats_.errors;
      spdlog::warn("runtime API: {}; container skipped", ep.error().message);
      return;
    }
    // At `init` the process exists but does not run yet; an exited one (a late reply) has no process.
    if (!is_running(*r) && !(init && is_initialised(*r))) return;
    if (is_own_netns(ep->netns_path)) return skip_host_network(id, "its sandbox " + ep->netns_path);
    known_.insert(ep->id);
    handler_(DiscoveryEvent{DiscoveryEvent::Kind::upsert, *ep, {}, seen});
  } catch (const std::exception& e) {
    ++stats_.errors;
    spdlog::warn("inspect {}: {}; container skipped", id, e.what());
  }
}

// An inspect the runtime did not answer says nothing about the container: it may well be running. Left
// there, it stays unclassified (its traffic dropped) until the event stream happens to break; so the
// whole view is read again, as after a reconnect. Once per connection: a newer one has its own list.
void DockerClient::resync_if_unanswered(const Error& e, std::uint64_t gen, const std::string& id) {
  if (e.code == 0 || gen != generation_ || stopped_ || !events_) return;
  spdlog::warn("runtime API gave no answer inspecting container {} ({}); reading every container again",
               id.substr(0, 12), e.message);
  schedule_reconnect();
}

void DockerClient::skip_host_network(const std::string& id, const std::string& why) {
  if (!host_network_.insert(id).second) return;  // logged and counted once
  ++stats_.host_network;
  spdlog::info("container {} shares the node's network namespace ({}): its addresses are `host`, not a workload",
               id.substr(0, 12), why);
}

void DockerClient::list_all() {
  auto alive = alive_;
  const auto gen = generation_;
  get(std::string(kApi) + "/containers/json", [this, alive, gen](Result<json> r) {
    if (!*alive || gen != generation_) return;  // a late answer to a connection given up: a newer one lists
    if (!r || !r->is_array()) {
      ++stats_.errors;
      spdlog::warn("listing containers failed: {}", r ? "not an array" : r.error().message);
      return schedule_reconnect();
    }
    const std::set<std::string> seen = container_ids(*r);
    std::erase_if(host_network_, [&](const std::string& id) { return !seen.count(id); });
    // Containers that vanished while we were disconnected.
    for (auto it = known_.begin(); it != known_.end();) {
      if (!seen.count(*it)) {
        handler_(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, *it});
        it = known_.erase(it);
      } else {
        ++it;
      }
    }
    auto remaining = std::make_shared<std::size_t>(seen.size());
    if (seen.empty()) handler_(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}});
    for (const auto& id : seen) {
      ++stats_.inspects;
      get(std::string(kApi) + "/containers/" + id + "/json", [this, id, alive, remaining, gen](Result<json> r) {
        if (!*alive) return;
        on_inspect(id, r, {});
        if (--*remaining == 0) handler_(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}});
        if (!r) resync_if_unanswered(r.error(), gen, id);
      });
    }
  });
}

}  // namespace topowall::runtime
