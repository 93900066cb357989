#include "control/server.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <spdlog/spdlog.h>
#include <vector>

#include "common/fd.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::control {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using nlohmann::json;

json error_response(const std::string& code, const std::string& message) {
  return json{{"v", kProtocolVersion}, {"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

namespace {

constexpr std::size_t kRecvChunk = 64 << 10;

// Whether the peer was in `gid` when it connected (SO_PEERGROUPS: the kernel's copy taken at connect,
// not /proc/<pid>, whose pid may have exited and been reused by the time it is read).
bool peer_in_group(int fd, gid_t gid) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return std::find(groups.begin(), groups.end(), gid) != groups.end();
    }
    if (errno != ERANGE) return false;  // fails closed: reads only
    groups.resize(len / sizeof(gid_t) + 1);
  }
  return false;
}

}  // namespace

struct Server::Conn : std::enable_shared_from_this<Conn> {
  Conn(Server& s, local::socket sock) : server(s), sock(std::move(sock)) { ++server.open_conns_; }
  ~Conn() {
    if (!*alive) return;
    --server.open_conns_;
    server.stats_.output_bytes -= out_bytes;
  }
  // A descriptor received, and the stream offset of the last byte that came with it: it belongs to the
  // request line that byte is part of (the kernel hands it over with the first bytes of the sendmsg that
  // carried it, and never merges later bytes into that read).
  struct Passed {
    std::uint64_t at;
    UniqueFd fd;
  };
  Server& server;
  local::socket sock;
  std::string in;               // received bytes; in[head..] not handled yet
  std::size_t head = 0;
  std::uint64_t in_offset = 0;  // stream offset of in[0]
  std::deque<Passed> fds;
  Peer peer;
  std::deque<std::string> out;
  std::size_t out_bytes = 0;
  bool writing = false;
  bool closing = false;
  bool paused = false;  // reading stopped until the client reads its answers
  std::chrono::steady_clock::time_point window_start = std::chrono::steady_clock::now();
  int in_window = 0;
  std::shared_ptr<bool> alive = server.alive_;

  void send(std::string line) {
    out_bytes += line.size();
    server.stats_.output_bytes += line.size();
    server.stats_.output_peak = std::max<std::uint64_t>(server.stats_.output_peak, out_bytes);
    out.push_back(std::move(line));
    if (!writing) flush();
  }
  void flush() {
    if (out.empty()) {
      writing = false;
      if (closing) {
        boost::system::error_code ec;
        sock.shutdown(local::socket::shutdown_both, ec);
      }
      return;
    }
    writing = true;
    auto self = shared_from_this();
    asio::async_write(sock, asio::buffer(out.front()), [self](boost::system::error_code ec, std::size_t) {
      if (ec || !*self->alive) return;
      self->out_bytes -= self->out.front().size();
      self->server.stats_.output_bytes -= self->out.front().size();
      self->out.pop_front();
      if (self->paused && !self->full() && !self->closing) {
        self->paused = false;
        self->read();
      }
      self->flush();
    });
  }
  bool full() const { return out_bytes >= server.opts_.max_output_bytes; }
  // A client that pipelines requests without reading the answers is no longer read, so what is queued for
  // it stays within the bound (plus the one answer that crossed it); reading resumes as the queue drains.
  void read_or_pause() {
    if (!full()) return read();
    paused = true;
    ++server.stats_.paused;
  }
  // A stream's next line. A client that does not keep up is cut off rather than buffered for without end.
  bool push(std::string line) {
    if (!*alive || !sock.is_open()) return false;
    if (full()) {
      ++server.stats_.slow_closed;
      spdlog::warn("control client (pid {}) does not read its stream; closing it", peer.pid);
      boost::system::error_code ec;
      sock.close(ec);  // cancels the pending write; the queue goes with this connection
      return false;
    }
    send(std::move(line));
    return true;
  }
  bool rate_ok() {
    auto now = std::chrono::steady_clock::now();
    if (now - window_start > std::chrono::seconds(1)) {
      window_start = now;
      in_window = 0;
    }
    return ++in_window <= server.opts_.max_requests_per_second;
  }
  void refuse_and_close(const std::string& code, const std::string& message) {
    ++server.stats_.rejected;
    closing = true;
    fds.clear();
    send(error_response(code, message).dump() + "\n");
  }
  // The next request: one already received (pipelined), handled on a later turn of the loop so other
  // connections are served in between; else wait for bytes.
  void read() {
    auto self = shared_from_this();
    if (in.find('\n', head) != std::string::npos) {
      asio::post(sock.get_executor(), [self] {
        if (*self->alive && self->sock.is_open()) self->next_line();
      });
      return;
    }
    if (in.size() - head >= server.opts_.max_request_bytes)
      return refuse_and_close("too_large", "request exceeds " + std::to_string(server.opts_.max_request_bytes) +
                                               " bytes; send one JSON object per line (a graph goes as a descriptor)");
    sock.async_wait(local::socket::wait_read, [self](boost::system::error_code ec) {
      if (!*self->alive || ec) return;
      self->receive();
    });
  }
  // recvmsg rather than a plain read: a plain read would silently close any descriptor that came along.
  void receive() {
    if (head > 0) {  // drop what was handled, so the buffer never outgrows the request limit
      in.erase(0, head);
      in_offset += head;
      head = 0;
    }
    const std::size_t old = in.size();
    in.resize(old + std::min(kRecvChunk, server.opts_.max_request_bytes - old));
    iovec iov{in.data() + old, in.size() - old};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    ssize_t n = ::recvmsg(sock.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    in.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return read();
    bool too_many = (msg.msg_flags & MSG_CTRUNC) != 0;  // the kernel closed what did not fit
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        UniqueFd owned(fd);
        if (fds.size() >= kMaxPassedFds) too_many = true;
        else fds.push_back({in_offset + old + static_cast<std::size_t>(n) - 1, std::move(owned)});
      }
    }
    if (n <= 0) return;  // closed by the peer, or an error: the connection ends
    if (too_many)
      return refuse_and_close("too_many_fds", "at most " + std::to_string(kMaxPassedFds) +
                                                  " descriptors may wait on a connection; send one with the request that uses it");
    read();
  }
  void next_line() {
    const std::size_t nl = in.find('\n', head);
    std::string line = in.substr(head, nl - head + 1);
    head = nl + 1;
    // The descriptors that came with this line: the last one is its own, earlier ones were sent with no
    // request to take them and are closed.
    UniqueFd passed;
    while (!fds.empty() && fds.front().at <= in_offset + nl) {
      passed = std::move(fds.front().fd);
      fds.pop_front();
    }
    try {
      handle(line, passed.get());
    } catch (const std::exception& e) {  // never out of the event loop
      spdlog::error("control request failed: {}", e.what());
      send(error_response("internal", e.what()).dump() + "\n");
    }
    if (!closing) read_or_pause();
  }
  void handle(const std::string& line, int passed_fd) {
    ++server.stats_.requests;
    json resp;
    if (!rate_ok()) {
      ++server.stats_.rejected;
      resp = error_response("rate_limited", "too many requests on this connection; slow down");
    } else {
      // Bounded nesting: a request nested 200,000 deep fits in 1 MiB and would overflow the stack the
      // first time it is copied or answered.
      auto req = topology::parse_json(line);
      if (!req) {
        ++server.stats_.rejected;
        resp = error_response("malformed", "request is " + req.error().message + "; send one JSON object per line, " +
                                               "at most " + std::to_string(topology::kMaxJsonDepth) + " levels deep");
      } else if (!req->is_object()) {
        ++server.stats_.rejected;
        resp = error_response("malformed", "request is not a JSON object on one line");
      } else {
        auto weak = weak_from_this();
        PushFn push = [weak](const json& j) {
          auto c = weak.lock();
          return c && c->push(j.dump() + "\n");
        };
        peer.passed_fd = passed_fd;
        try {
          resp = server.handler_(*req, peer, push);
        } catch (const std::exception& e) {
          resp = error_response("internal", std::string("request failed: ") + e.what());
        }
        peer.passed_fd = -1;
        if (resp.is_object() && !resp.value("ok", false)) ++server.stats_.rejected;
      }
    }
    if (resp.is_null()) return;  // streaming call answered through push
    send(resp.dump() + "\n");
  }
};

Server::Server(asio::io_context& io, ServerOptions opts, Handler handler)
    : io_(io), opts_(std::move(opts)), handler_(std::move(handler)) {}

Server::~Server() {
  *alive_ = false;
  stop();
}

Status Server::start() {
  if (!opts_.group.empty()) {
    group* g = getgrnam(opts_.group.c_str());
    if (!g) return Error{"control group '" + opts_.group + "' does not exist; create it or drop --control-group"};
    group_gid_ = g->gr_gid;
    has_group_ = true;
  }
  // A stale socket from a crashed agent would make bind fail; it is ours to replace.
  struct stat st{};
  if (lstat(opts_.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error{"control socket path " + opts_.path + " exists and is not a socket; remove it or choose --socket"};
    ::unlink(opts_.path.c_str());
  }
  acceptor_ = std::make_unique<local::acceptor>(io_);
  boost::system::error_code ec;
  acceptor_->open(local(), ec);
  if (!ec) acceptor_->bind(local::endpoint(opts_.path), ec);
  if (!ec) acceptor_->listen(64, ec);
  if (ec) return Error{"control socket " + opts_.path + ": " + ec.message() + " (does the directory exist?)"};
  ::chmod(opts_.path.c_str(), 0660);
  if (has_group_) (void)::chown(opts_.path.c_str(), 0, group_gid_);
  accept();
  return ok_status();
}

void Server::stop() {
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
    acceptor_.reset();
    ::unlink(opts_.path.c_str());
  }
}

void Server::accept() {
  auto alive = alive_;
  acceptor_->async_accept([this, alive](boost::system::error_code ec, local::socket sock) {
    if (!*alive || !acceptor_) return;
    if (!ec && open_conns_ >= opts_.max_connections) {
      // Too many clients at once: answer and close, keep serving the others.
      ++stats_.rejected;
      auto msg = std::make_shared<std::string>(
          error_response("busy", "too many control connections; retry shortly").dump() + "\n");
      auto s = std::make_shared<local::socket>(std::move(sock));
      asio::async_write(*s, asio::buffer(*msg), [s, msg](boost::system::error_code, std::size_t) {});
    } else if (!ec) {
      ++stats_.connections;
      auto conn = std::make_shared<Conn>(*this, std::move(sock));
      ucred cred{};
      socklen_t len = sizeof cred;
      // SO_PEERCRED: the kernel's word on who connected, not the file mode.
      if (getsockopt(conn->sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        conn->peer.uid = cred.uid;
        conn->peer.gid = cred.gid;
        conn->peer.pid = cred.pid;
        conn->peer.may_write =
            cred.uid == 0 || (has_group_ && (cred.gid == group_gid_ || peer_in_group(conn->sock.native_handle(), group_gid_)));
      }
      conn->read();
    }
    accept();
  });
}

}  // namespace topowall::control
