#include "topowall/topology/endpoints.hpp"

#include <algorithm>

#include "topowall/topology/identity.hpp"

namespace topowall::topology {

namespace {
const std::string kEmpty;
}

void EndpointTable::index_remove(const Entry& e) {
  auto& eps = by_workload_[e.second.workload];
  std::erase(eps, &e.second);
  if (eps.empty()) by_workload_.erase(e.second.workload);
  for (const auto& [addr, port] : e.second.info.ports)
    if (auto p = port_owner_.find(port); p != port_owner_.end() && p->second == &e) port_owner_.erase(p);
}

std::vector<IpAddr> EndpointTable::upsert(const std::string& workload, EndpointInfo info) {
  std::vector<IpAddr> changed;
  auto [node, inserted] = endpoints_.try_emplace(info.id);
  const Entry* self = &*node;
  if (!inserted) {
    // Addresses this endpoint dropped.
    for (const auto& a : node->second.info.addresses) {
      if (std::find(info.addresses.begin(), info.addresses.end(), a) == info.addresses.end()) {
        auto o = owner_.find(a);
        if (o != owner_.end() && o->second == self) {
          owner_.erase(o);
          changed.push_back(a);
        }
      }
    }
    index_remove(*node);
  }
  // The newest claimant of an address owns it: a reused IP moves at once.
  for (const auto& a : info.addresses) {
    auto& owner = owner_[a];
    if (owner != self) {
      owner = self;
      changed.push_back(a);
    } else if (!inserted && node->second.workload != workload) {
      changed.push_back(a);
    }
  }
  node->second = Endpoint{workload, std::move(info)};
  by_workload_[workload].push_back(&node->second);
  for (const auto& [addr, port] : node->second.info.ports) port_owner_[port] = self;
  return changed;
}

std::vector<IpAddr> EndpointTable::remove(const std::string& id) {
  std::vector<IpAddr> changed;
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return changed;
  const Entry* self = &*it;
  for (const auto& a : it->second.info.addresses) {
    auto o = owner_.find(a);
    if (o == owner_.end() || o->second != self) continue;
    owner_.erase(o);
    changed.push_back(a);
    // Hand the address back to another endpoint that still claims it.
    for (const auto& entry : endpoints_) {
      if (&entry == self) continue;
      const auto& addrs = entry.second.info.addresses;
      if (std::find(addrs.begin(), addrs.end(), a) != addrs.end()) {
        owner_[a] = &entry;
        break;
      }
    }
  }
  index_remove(*it);
  endpoints_.erase(it);
  return changed;
}

const std::string& EndpointTable::workload_at_port(std::uint32_t ifindex) const {
  auto p = port_owner_.find(ifindex);
  return p == port_owner_.end() ? kEmpty : p->second->second.workload;
}

void EndpointTable::set_host_addresses(std::vector<IpAddr> addrs) { host_ = std::move(addrs); }
void EndpointTable::set_external_networks(std::vector<NamedNetwork> nets) {
  // Most specific network first.
  std::stable_sort(nets.begin(), nets.end(),
                   [](const auto& a, const auto& b) { return a.cidr.prefix > b.cidr.prefix; });
  external_ = std::move(nets);
}

const std::string& EndpointTable::workload_of(const IpAddr& ip) const {
  auto o = owner_.find(ip);
  return o == owner_.end() ? kEmpty : o->second->second.workload;
}

const std::string& EndpointTable::owner_of(const IpAddr& ip) const {
  auto o = owner_.find(ip);
  return o == owner_.end() ? kEmpty : o->second->first;
}

std::string EndpointTable::resolve(const IpAddr& ip) const {
  if (const auto& w = workload_of(ip); !w.empty()) return w;
  if (std::find(host_.begin(), host_.end(), ip) != host_.end()) return std::string(kHost);
  for (const auto& n : external_)
    if (n.cidr.contains(ip)) return n.name;
  return std::string(kWorld);
}

const Endpoint* EndpointTable::find(const std::string& id) const {
  auto it = endpoints_.find(id);
  return it == endpoints_.end() ? nullptr : &it->second;
}

std::map<IpAddr, std::string> EndpointTable::address_map() const {
  std::map<IpAddr, std::string> out;
  for (const auto& [ip, entry] : owner_) out.emplace_hint(out.end(), ip, entry->second.workload);
  return out;
}

}  // namespace topowall::topology
