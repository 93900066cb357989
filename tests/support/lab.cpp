#include <fcntl.h>
#include <spawn.h>

#include "lab.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "rtnl/addresses.hpp"

namespace topowall::testing {

int sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  return out;
}

bool is_root() { return geteuid() == 0; }

bool write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value << "\n";
  out.close();
  return !out.fail() && sh_out("cat " + path).rfind(value, 0) == 0;
}

void in_netns(const std::string& ns_path, const std::function<Status()>& fn) {
  if (auto st = rtnl::run_in_netns(ns_path, fn); !st) throw std::runtime_error("lab: " + st.error().message);
}

std::string Lab::missing() {
  if (!is_root()) return "needs root: namespaces, bridges, conntrack, nftables";
  for (const char* knob : {"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"}) {
    const std::string path = std::string("/proc/sys/net/bridge/") + knob;
    if (access(path.c_str(), F_OK) != 0) sh("modprobe br_netfilter");
    if (access(path.c_str(), F_OK) != 0) return "br_netfilter is not loaded and cannot be (modprobe br_netfilter)";
    if (sh_out("cat " + path).rfind('1', 0) != 0 && !write_sysctl(path, "1")) return path + " is off and cannot be set";
  }
  return {};
}

namespace {
// Tables a test process left when it died (an abort skips TearDown): their guard would judge this lab's
// ports as unclassified. Test tables end in their process id; a dead one's go.
void drop_orphaned_tables() {
  std::istringstream in(sh_out("nft list tables 2>/dev/null"));
  std::string word, family, name;
  while (in >> word >> family >> name) {
    if (name.rfind("topowall_it", 0) != 0) continue;
    auto digits = name.find_last_not_of("0123456789");
    if (digits == std::string::npos || digits + 1 == name.size()) continue;
    if (access(("/proc/" + name.substr(digits + 1)).c_str(), F_OK) != 0) sh("nft delete table " + family + " " + name);
  }
}
}  // namespace

Lab::Lab(std::string prefix, std::string net, std::vector<std::string> hosts, int v6_tag)
    : prefix_(std::move(prefix)), net_(std::move(net)), v6_tag_(v6_tag) {
  drop_orphaned_tables();
  sh("ip link del " + prefix_ + "br");
  ok_ = sh("ip link add " + prefix_ + "br type bridge") == 0 &&
        sh("ip addr add " + gateway() + "/24 dev " + prefix_ + "br") == 0 &&
        sh("ip link set " + prefix_ + "br up") == 0;
  for (std::size_t i = 0; i < hosts.size(); ++i) add_host(hosts[i], net_ + "." + std::to_string(i + 2));
}

void Lab::add_host(const std::string& host, const std::string& addr) {
  // Unique per lab and host: a deleted namespace releases its veth asynchronously.
  static std::atomic<int> serial{0};
  const std::string n = ns(host), veth = prefix_ + std::to_string(getpid() % 100) + "x" + std::to_string(serial++ % 1000);
  ++next_index_;
  sh("ip netns del " + n);
  bool ok = sh("ip netns add " + n) == 0 && sh("ip link add " + veth + " type veth peer name eth0 netns " + n) == 0 &&
            sh("ip link set " + veth + " master " + prefix_ + "br up") == 0 &&
            sh("ip -n " + n + " link set lo up") == 0 && sh("ip -n " + n + " link set eth0 up") == 0 &&
            sh("ip -n " + n + " addr add " + addr + "/24 dev eth0") == 0 &&
            sh("ip -n " + n + " route add default via " + gateway()) == 0;
  ips_[host] = addr;
  if (v6_tag_) {
    auto last = addr.substr(addr.rfind('.') + 1);
    auto v6 = "fd00:" + std::to_string(v6_tag_) + "::" + last;
    ok = ok && sh("ip -n " + n + " addr add " + v6 + "/64 dev eth0 nodad") == 0;
    ip6s_[host] = v6;
  }
  hosts_.push_back(host);
  veths_[host] = veth;
  ok_ = ok_ && ok;
}

std::uint32_t Lab::port(const std::string& host) const { return if_nametoindex(veths_.at(host).c_str()); }

void Lab::remove_host(const std::string& host) {
  sh("ip netns pids " + ns(host) + " | xargs -r kill -9");
  sh("ip netns del " + ns(host));
  sh("ip link del " + veths_[host]);
  ips_.erase(host);
  ip6s_.erase(host);
  std::erase(hosts_, host);
}

Lab::~Lab() {
  for (const auto& h : hosts_) {
    sh("ip netns pids " + ns(h) + " | xargs -r kill -9");
    sh("ip netns del " + ns(h));
    sh("ip link del " + veths_[h]);
  }
  sh("ip link del " + prefix_ + "br");
}

Server::Server(const std::string& ns_path, int port, bool udp) : udp_(udp) {
  in_netns(ns_path, [&]() -> Status {
    fd_.reset(::socket(AF_INET6, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    int one = 1, zero = 0;
    setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<std::uint16_t>(port));
    sa.sin6_addr = in6addr_any;
    if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return Error{"bind"};
    if (!udp && listen(fd_.get(), 512) < 0) return Error{"listen"};
    return ok_status();
  });
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      if (udp_) {
        // Echo: a UDP service answers (learning trusts only answered flows; a one-way sender is tested apart).
        char buf[64];
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        auto n = recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n >= 0) {
          ++accepted_;
          (void)sendto(fd_.get(), buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
      } else {
        int c = accept(fd_.get(), nullptr, nullptr);
        if (c >= 0) {
          ++accepted_;
          close(c);
        }
      }
    }
  });
}

Server::~Server() {
  stop_ = true;
  thread_.join();
}

bool tcp_connect(const std::string& ns_path, const std::string& ip, int port, int timeout_ms) {
  bool connected = false;
  in_netns(ns_path, [&]() -> Status {
    bool v6 = ip.find(':') != std::string::npos;
    UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(static_cast<std::uint16_t>(port));
      inet_pton(AF_INET6, ip.c_str(), &sa->sin6_addr);
      len = sizeof *sa;
    } else {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(static_cast<std::uint16_t>(port));
      inet_pton(AF_INET, ip.c_str(), &sa->sin_addr);
      len = sizeof *sa;
    }
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      connected = true;
      return ok_status();
    }
    if (errno != EINPROGRESS) return ok_status();
    pollfd p{fd.get(), POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t el = sizeof err;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
      connected = err == 0;
    }
    return ok_status();
  });
  return connected;
}

bool udp_send(const std::string& ns_path, const std::string& ip, int port) {
  bool sent = false;
  in_netns(ns_path, [&]() -> Status {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    sent = sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 1;
    return ok_status();
  });
  return sent;
}

bool udp_send_from(const std::string& ns_path, const std::string& src, const std::string& dst, int port) {
  bool sent = false;
  const bool v6 = src.find(':') != std::string::npos;
  in_netns(ns_path, [&]() -> Status {
    UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int one = 1;
    // What a container with NET_RAW or NET_ADMIN can do: send from any source address.
    if (v6) {
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
    } else {
      setsockopt(fd.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
      setsockopt(fd.get(), IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one);
    }
    sockaddr_storage from{}, to{};
    socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (v6) {
      auto *f = reinterpret_cast<sockaddr_in6*>(&from), *t = reinterpret_cast<sockaddr_in6*>(&to);
      f->sin6_family = t->sin6_family = AF_INET6;
      inet_pton(AF_INET6, src.c_str(), &f->sin6_addr);
      inet_pton(AF_INET6, dst.c_str(), &t->sin6_addr);
      t->sin6_port = htons(static_cast<std::uint16_t>(port));
    } else {
      auto *f = reinterpret_cast<sockaddr_in*>(&from), *t = reinterpret_cast<sockaddr_in*>(&to);
      f->sin_family = t->sin_family = AF_INET;
      inet_pton(AF_INET, src.c_str(), &f->sin_addr);
      inet_pton(AF_INET, dst.c_str(), &t->sin_addr);
      t->sin_port = htons(static_cast<std::uint16_t>(port));
    }
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&from), len) < 0) return ok_status();
    sent = sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), len) == 1;
    return ok_status();
  });
  return sent;
}

std::uint64_t counter(const std::string& table, const std::string& chain) {
  std::uint64_t n = 0;
  for (const char* fam : {"inet", "bridge"}) {
    auto text = sh_out("nft list chain " + std::string(fam) + " " + table + " " + chain + " 2>/dev/null");
    for (auto p = text.find("counter packets "); p != std::string::npos; p = text.find("counter packets ", p + 1))
      n += std::stoull(text.substr(p + 16));
  }
  return n;
}

void drop_tables(const std::string& table) {
  sh("nft delete table inet " + table);
  sh("nft delete table bridge " + table);
}

bool eventually(const std::function<bool()>& pred, int ms) {
  for (int waited = 0;; waited += 20) {
    if (pred()) return true;
    if (waited >= ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool ping(const std::string& ns, const std::string& ip) {
  return sh("ip netns exec " + ns + " busybox ping -c1 -W1 " + ip) == 0;
}

int spawn_logged(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

}  // namespace topowall::testing
