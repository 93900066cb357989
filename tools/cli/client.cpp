#include "client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "topowall/topology/json_limits.hpp"

namespace topowall::cli {

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Status Client::connect() {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.size() >= sizeof sa.sun_path) return Error{"socket path too long: " + path_};
  std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    std::string hint = e == ENOENT ? " (is topowalld running? pass --socket)"
                       : e == EACCES ? " (permission denied: run as root or a member of the control group)"
                                     : "";
    return Error{"cannot reach topowalld at " + path_ + ": " + std::strerror(e) + hint, e};
  }
  return ok_status();
}

Result<nlohmann::json> Client::next() {
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      auto line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      // Bounded nesting: whatever listens on the socket must not crash the CLI printing its answer.
      auto j = topology::parse_json(line);
      if (!j) return Error{"the agent's answer is " + j.error().message};
      return j;
    }
    char chunk[65536];
    ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{"agent closed the connection"};
    buf_.append(chunk, static_cast<std::size_t>(n));
  }
}

namespace {
// The first send carries the descriptor; the kernel delivers it with the first bytes of the line.
ssize_t send_part(int sock, const char* data, std::size_t len, int pass_fd) {
  iovec iov{const_cast<char*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL);
}
}  // namespace

Result<nlohmann::json> Client::call(const std::string& method, const nlohmann::json& params, int pass_fd) {
  if (fd_ < 0)
    if (auto st = connect(); !st) return st.error();
  std::string line = nlohmann::json{{"v", 1}, {"method", method}, {"params", params}}.dump() + "\n";
  std::size_t off = 0;
  while (off < line.size()) {
    // MSG_NOSIGNAL: an agent that refuses us (busy) closes first; EPIPE, not a SIGPIPE death, and the
    // reason it already sent is still readable below.
    ssize_t n = send_part(fd_, line.data() + off, line.size() - off, off == 0 ? pass_fd : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) break;
      return Error{std::string("send to agent: ") + std::strerror(errno)};
    }
    off += static_cast<std::size_t>(n);
  }
  return next();
}

}  // namespace topowall::cli
