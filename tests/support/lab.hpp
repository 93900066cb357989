// A lab of network namespaces on a host bridge, for root integration tests.
// Everything it makes carries its prefix and is removed by the destructor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "topowall/result.hpp"

namespace topowall::testing {

int sh(const std::string& cmd);                 // run a shell command, return its exit status
std::string sh_out(const std::string& cmd);     // ... and capture stdout
bool is_root();
// Write a /proc/sys knob (not through sh(): its output redirect would swallow `echo 1 > knob`).
bool write_sysctl(const std::string& path, const std::string& value);
// Run `fn` inside a lab namespace; a namespace that cannot be entered (or `fn` failing) throws, so
// that it never reads as a blocked connection.
void in_netns(const std::string& ns_path, const std::function<Status()>& fn);

class Lab {
 public:
  // What this machine lacks for a lab whose bridged traffic must reach the host's inet hooks
  // (br_netfilter with bridge-nf-call-iptables/ip6tables on, which it turns on when it can); empty when
  // nothing. Tests skip with this reason rather than pass or fail on a machine that cannot run them.
  static std::string missing();

  // Hosts get <net>.<2..> on a /24 (and fd00:<tag>::<n>/64); the bridge is <net>.1.
  Lab(std::string prefix, std::string net, std::vector<std::string> hosts, int v6_tag = 0);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  bool ok() const { return ok_; }
  std::string ns(const std::string& host) const { return prefix_ + "-" + host; }
  std::string ns_path(const std::string& host) const { return "/run/netns/" + ns(host); }
  std::string ip(const std::string& host) const { return ips_.at(host); }
  std::string ip6(const std::string& host) const { return ip6s_.at(host); }
  std::string gateway() const { return net_ + ".1"; }
  // The host-side port (ifindex of the veth on the bridge) of a host.
  std::uint32_t port(const std::string& host) const;
  // Add a host after construction (a new replica, or a reused address).
  void add_host(const std::string& host, const std::string& addr);
  void remove_host(const std::string& host);

 private:
  std::string prefix_, net_;
  int v6_tag_;
  std::map<std::string, std::string> ips_, ip6s_, veths_;
  std::vector<std::string> hosts_;
  int next_index_ = 0;
  bool ok_ = true;
};

// A TCP or UDP server socket inside a namespace, accepting in the background.
class Server {
 public:
  Server(const std::string& ns_path, int port, bool udp = false);
  ~Server();
  int accepted() const { return accepted_; }

 private:
  UniqueFd fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  bool udp_;
};

// Connect from inside a namespace; true when the handshake completed in time.
bool tcp_connect(const std::string& ns_path, const std::string& ip, int port, int timeout_ms = 700);
// Send one UDP datagram from inside a namespace.
bool udp_send(const std::string& ns_path, const std::string& ip, int port);
// One UDP datagram from a chosen source address, IPv4 or IPv6 (transparent: it need not be assigned), as a
// container with NET_RAW or NET_ADMIN can send it.
bool udp_send_from(const std::string& ns_path, const std::string& src, const std::string& dst, int port);
// Packets counted by the counters of one chain, summed over our inet and bridge tables of that name.
std::uint64_t counter(const std::string& table, const std::string& chain);
// Delete our tables of this name: the inet one and the guard's bridge twin.
void drop_tables(const std::string& table);
// Poll `pred` up to `ms`.
bool eventually(const std::function<bool()>& pred, int ms = 3000);
// One ICMP echo from a namespace (busybox ping); true when answered.
bool ping(const std::string& ns, const std::string& ip);

// Starts args[0] (looked up in PATH) with `args`, its stderr appended to `log`: the process id, or -1.
[[nodiscard]] int spawn_logged(std::vector<std::string> args, const std::string& log);

}  // namespace topowall::testing
