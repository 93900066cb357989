// Interface addresses of a network namespace, read with libnl (rtnetlink).
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "topowall/result.hpp"
#include "topowall/types.hpp"

namespace topowall::rtnl {

struct AddressRecord {
  int ifindex = 0;
  IpAddr addr;
  int prefix = 0;
  int scope = 0;  // RT_SCOPE_*
};

// Decode one RTM_NEWADDR/RTM_DELADDR message (recorded bytes in tests).
std::optional<AddressRecord> decode_address(const nlmsghdr* nlh);

// Addresses a peer could use to reach this namespace: global scope only
// (no loopback, no IPv6 link-local).
std::vector<IpAddr> usable(const std::vector<AddressRecord>& recs);

// Run `fn` on a thread that has entered the namespace at `netns_path` ("" = ours).
// Sockets opened inside stay bound to that namespace after the thread leaves.
[[nodiscard]] Status run_in_netns(const std::string& netns_path, const std::function<Status()>& fn);

// All addresses in the namespace.
[[nodiscard]] Result<std::vector<AddressRecord>> list_addresses(const std::string& netns_path);

// Container ifindex -> the host-side port (its veth peer, ifindex in the agent's namespace) for every
// veth of the namespace whose peer lives in another namespace and, checked from the host side, is a
// veth pointing back at it. Interfaces of other kinds have no entry.
[[nodiscard]] Result<std::map<int, std::uint32_t>> list_ports(const std::string& netns_path);

// A socket inside the namespace subscribed to address changes; readable when one happens.
[[nodiscard]] Result<UniqueFd> open_address_monitor(const std::string& netns_path);
// Drain a monitor socket without blocking; returns how many messages were read.
int drain_monitor(int fd);

}  // namespace topowall::rtnl
