#include "rtnl/addresses.hpp"

#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <sched.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "common/handles.hpp"

namespace topowall::rtnl {

namespace {

std::optional<AddressRecord> from_object(rtnl_addr* a) {
  nl_addr* local = rtnl_addr_get_local(a);
  if (!local) return std::nullopt;
  AddressRecord r;
  r.ifindex = rtnl_addr_get_ifindex(a);
  r.prefix = rtnl_addr_get_prefixlen(a);
  r.scope = rtnl_addr_get_scope(a);
  int fam = nl_addr_get_family(local);
  std::size_t len = nl_addr_get_len(local);
  if ((fam != AF_INET || len != 4) && (fam != AF_INET6 || len != 16)) return std::nullopt;
  r.addr.family = static_cast<std::uint8_t>(fam);
  std::memcpy(r.addr.bytes.data(), nl_addr_get_binary_addr(local), len);
  return r;
}

void parse_cb(nl_object* obj, void* arg) {
  auto* out = static_cast<std::optional<AddressRecord>*>(arg);
  *out = from_object(reinterpret_cast<rtnl_addr*>(obj));
}

}  // namespace

std::optional<AddressRecord> decode_address(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR) return std::nullopt;
  // nlmsg_convert copies, so the recorded bytes stay untouched.
  NlMsgPtr msg(nlmsg_convert(const_cast<nlmsghdr*>(nlh)));
  if (!msg) return std::nullopt;
  nlmsg_set_proto(msg.get(), NETLINK_ROUTE);  // picks libnl's address parser
  std::optional<AddressRecord> out;
  if (nl_msg_parse(msg.get(), parse_cb, &out) < 0) return std::nullopt;
  return out;
}

std::vector<IpAddr> usable(const std::vector<AddressRecord>& recs) {
  std::vector<IpAddr> out;
  for (const auto& r : recs)
    if (r.scope == RT_SCOPE_UNIVERSE || r.scope == RT_SCOPE_SITE) out.push_back(r.addr);
  return out;
}

Status run_in_netns(const std::string& path, const std::function<Status()>& fn) {
  if (path.empty()) return fn();
  Status result = Error{"not run"};
  // setns affects only the calling thread: a short-lived thread keeps the
  // event loop's thread in the host namespace.
  std::thread t([&] {
    UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
      result = Error{"open network namespace " + path + ": " + std::strerror(errno) +
                         " (the container or namespace may have just gone)",
                     errno};
      return;
    }
    if (setns(ns.get(), CLONE_NEWNET) < 0) {
      result = Error{"enter network namespace " + path + ": " + std::strerror(errno) + " (needs CAP_SYS_ADMIN)",
                     errno};
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

namespace {
// A libnl route socket, connected in the calling thread's namespace.
[[nodiscard]] Result<NlSockPtr> route_socket() {
  NlSockPtr sock(nl_socket_alloc());
  if (!sock) return alloc_error("a libnl socket");
  if (int e = nl_connect(sock.get(), NETLINK_ROUTE); e < 0) return Error{std::string("rtnetlink connect: ") + nl_geterror(e)};
  return sock;
}
}  // namespace

Result<std::vector<AddressRecord>> list_addresses(const std::string& netns_path) {
  std::vector<AddressRecord> out;
  auto st = run_in_netns(netns_path, [&]() -> Status {
    auto sock = route_socket();
    if (!sock) return sock.error();
    nl_cache* raw = nullptr;
    if (int e = rtnl_addr_alloc_cache(sock->get(), &raw); e < 0)
      return Error{std::string("rtnetlink address dump: ") + nl_geterror(e)};
    NlCachePtr cache(raw);
    for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o))
      if (auto r = from_object(reinterpret_cast<rtnl_addr*>(o))) out.push_back(*r);
    return ok_status();
  });
  if (!st) return st.error();
  return out;
}

Result<std::map<int, std::uint32_t>> list_ports(const std::string& netns_path) {
  std::map<int, std::uint32_t> claimed;  // as the namespace says
  auto st = run_in_netns(netns_path, [&]() -> Status {
    auto sock = route_socket();
    if (!sock) return sock.error();
    nl_cache* raw = nullptr;
    if (int e = rtnl_link_alloc_cache(sock->get(), AF_UNSPEC, &raw); e < 0)
      return Error{std::string("rtnetlink link dump: ") + nl_geterror(e)};
    NlCachePtr cache(raw);
    for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
      auto* l = reinterpret_cast<rtnl_link*>(o);
      const char* type = rtnl_link_get_type(l);
      std::int32_t nsid = -1;
      // A veth whose peer is in another namespace (a pair made inside the container has none).
      if (!type || std::strcmp(type, "veth") != 0 || rtnl_link_get_link_netnsid(l, &nsid) < 0) continue;
      if (int peer = rtnl_link_get_link(l); peer > 0) claimed[rtnl_link_get_ifindex(l)] = static_cast<std::uint32_t>(peer);
    }
    return ok_status();
  });
  if (!st) return st.error();
  // Trust the pairing only when the host side agrees: a veth in our namespace pointing back.
  auto sock = route_socket();
  if (!sock) return sock.error();
  std::map<int, std::uint32_t> out;
  for (const auto& [inner, host] : claimed) {
    rtnl_link* raw = nullptr;
    if (rtnl_link_get_kernel(sock->get(), static_cast<int>(host), nullptr, &raw) < 0 || !raw) continue;
    RtnlLinkPtr l(raw);
    const char* type = rtnl_link_get_type(l.get());
    if (type && std::strcmp(type, "veth") == 0 && rtnl_link_get_link(l.get()) == inner) out[inner] = host;
  }
  return out;
}

Result<UniqueFd> open_address_monitor(const std::string& netns_path) {
  UniqueFd fd;
  auto st = run_in_netns(netns_path, [&]() -> Status {
    UniqueFd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!s) return Error{std::string("rtnetlink socket: ") + std::strerror(errno), errno};
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
      return Error{std::string("rtnetlink subscribe: ") + std::strerror(errno), errno};
    fd = std::move(s);
    return ok_status();
  });
  if (!st) return st.error();
  return fd;
}

int drain_monitor(int fd) {
  char buf[8192];
  int n = 0;
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0 || errno == ENOBUFS) ++n;
  return n;
}

}  // namespace topowall::rtnl
