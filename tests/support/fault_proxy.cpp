#include "fault_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <list>
#include <vector>

namespace topowall::testing {

namespace {

using Clock = std::chrono::steady_clock;

struct Addr {
  sockaddr_storage sa{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  std::string path;  // unix only
};

Addr parse_addr(const std::string& s) {
  Addr a;
  if (s.rfind("unix:", 0) == 0) {
    auto* un = reinterpret_cast<sockaddr_un*>(&a.sa);
    un->sun_family = AF_UNIX;
    a.path = s.substr(5);
    std::strncpy(un->sun_path, a.path.c_str(), sizeof un->sun_path - 1);
    a.len = sizeof(sockaddr_un);
    a.family = AF_UNIX;
  } else if (s.rfind("tcp:", 0) == 0) {
    const auto colon = s.rfind(':');
    auto* in = reinterpret_cast<sockaddr_in*>(&a.sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1))));
    inet_pton(AF_INET, s.substr(4, colon - 4).c_str(), &in->sin_addr);
    a.len = sizeof(sockaddr_in);
    a.family = AF_INET;
  }
  return a;
}

int open_listener(const Addr& a) {
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (a.family == AF_INET) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // rebinding at once after `down`
  if (a.family == AF_UNIX) ::unlink(a.path.c_str());
  if (bind(fd, reinterpret_cast<const sockaddr*>(&a.sa), a.len) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

struct Chunk {
  Clock::time_point due;
  std::string data;
};

struct Pair {
  int client = -1, server = -1;
  std::deque<Chunk> to_client;  // held back while the service is slow
  bool dead = false;
  bool server_eof = false;  // what it sent before still goes out, late if it is slow
  ~Pair() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};

}  // namespace

FaultProxy::FaultProxy(std::string listen, std::string target) : listen_(std::move(listen)), target_(std::move(target)) {
  listen_fd_ = open_listener(parse_addr(listen_));
  ok_ = listen_fd_ >= 0 && parse_addr(target_).family != AF_UNSPEC;
  thread_ = std::thread([this] { run(); });
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  const auto a = parse_addr(listen_);
  if (a.family == AF_UNIX) ::unlink(a.path.c_str());
}

void FaultProxy::set(Mode m) { mode_ = m; }
void FaultProxy::set_answer_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }

void FaultProxy::run() {
  const Addr in = parse_addr(listen_), out = parse_addr(target_);
  std::list<Pair> pairs;
  char buf[65536];
  while (!stop_) {
    const Mode m = mode_;
    if (m == Mode::down) {
      if (listen_fd_ >= 0) {
        close(listen_fd_);
        listen_fd_ = -1;
        if (in.family == AF_UNIX) ::unlink(in.path.c_str());
      }
      pairs.clear();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (listen_fd_ < 0) listen_fd_ = open_listener(in);
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    std::vector<std::pair<Pair*, bool>> who{{nullptr, false}};  // the pair, and whether the fd is its client
    if (m == Mode::pass)
      for (auto& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        who.push_back({&p, true});
        if (p.server_eof) continue;
        fds.push_back({p.server, POLLIN, 0});
        who.push_back({&p, false});
      }
    if (poll(fds.data(), fds.size(), 10) < 0) continue;
    if (fds[0].revents & POLLIN) {
      int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ++accepted_;
        int s = socket(out.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0 && connect(s, reinterpret_cast<const sockaddr*>(&out.sa), out.len) == 0) {
          pairs.emplace_back();
          pairs.back().client = c;
          pairs.back().server = s;
        } else {  // the service itself is away: the client sees its connection closed
          close(c);
          if (s >= 0) close(s);
        }
      }
    }
    const auto now = Clock::now();
    for (std::size_t i = 1; i < fds.size(); ++i) {
      auto* p = who[i].first;
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || p->dead) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        (who[i].second ? p->dead : p->server_eof) = true;
        continue;
      }
      if (who[i].second) {
        if (!send_all(p->server, buf, static_cast<std::size_t>(n))) p->dead = true;
      } else {
        p->to_client.push_back({now + std::chrono::milliseconds(delay_ms_.load()), std::string(buf, static_cast<std::size_t>(n))});
      }
    }
    for (auto& p : pairs) {
      if (m != Mode::pass) break;
      while (!p.dead && !p.to_client.empty() && p.to_client.front().due <= now) {
        if (!send_all(p.client, p.to_client.front().data.data(), p.to_client.front().data.size())) p.dead = true;
        p.to_client.pop_front();
      }
      // A service that closed its side: pass that on once what it sent before has gone out.
      if (p.server_eof && p.to_client.empty()) p.dead = true;
    }
    pairs.remove_if([](const Pair& p) { return p.dead; });
  }
}

}  // namespace topowall::testing
