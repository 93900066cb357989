#include "topowall/topology/endpoints.hpp"

#include <algorithm>

#include "topowall/topology/identity.hpp"

namespace topowall::topology {

namespace {
const std::string kEmpty;
}

void EndpointTable::index_remove(const std::string& id) {
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return;
  auto& ids = by_workload_[it->second.workload];
  std::erase(ids, id);
  if (ids.empty()) by_workload_.erase(it->second.workload);
  for (const auto& [addr, port] : it->second.info.ports)
    if (auto p = port_owner_.find(port); p != port_owner_.end() && p->second.id == id) port_owner_.erase(p);
}

std::vector<IpAddr> EndpointTable::upsert(const std::string& workload, EndpointInfo info) {
  std::vector<IpAddr> changed;
  const std::string id = info.id;
  auto old = endpoints_.find(id);
  if (old != endpoints_.end()) {
    // Addresses this endpoint dropped.
    for (const auto& a : old->second.info.addresses) {
      if (std::find(info.addresses.begin(), info.addresses.end(), a) == info.addresses.end()) {
        auto o = owner_.find(a);
        if (o != owner_.end() && o->second == id) {
          owner_.erase(o);
          changed.push_back(a);
        }
      }
    }
    index_remove(id);
  }
  // The newest claimant of an address owns it: a reused IP moves at once.
  for (const auto& a : info.addresses) {
    auto& owner = owner_[a];
    if (owner != id) {
      owner = id;
      changed.push_back(a);
    } else if (old != endpoints_.end() && old->second.workload != workload) {
      changed.push_back(a);
    }
  }
  by_workload_[workload].push_back(id);
  for (const auto& [addr, port] : info.ports) port_owner_[port] = PortOwner{id, workload};
  endpoints_[id] = Endpoint{workload, std::move(info)};
  return changed;
}

std::vector<IpAddr> EndpointTable::remove(const std::string& id) {
  std::vector<IpAddr> changed;
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return changed;
  for (const auto& a : it->second.info.addresses) {
    auto o = owner_.find(a);
    if (o == owner_.end() || o->second != id) continue;
    owner_.erase(o);
    changed.push_back(a);
    // Hand the address back to another endpoint that still claims it.
    for (const auto& [oid, ep] : endpoints_) {
      if (oid == id) continue;
      if (std::find(ep.info.addresses.begin(), ep.info.addresses.end(), a) != ep.info.addresses.end()) {
        owner_[a] = oid;
        break;
      }
    }
  }
  index_remove(id);
  endpoints_.erase(it);
  return changed;
}

const std::string& EndpointTable::workload_at_port(std::uint32_t ifindex) const {
  auto p = port_owner_.find(ifindex);
  return p == port_owner_.end() ? kEmpty : p->second.workload;
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
  if (o == owner_.end()) return kEmpty;
  return endpoints_.at(o->second).workload;
}

const std::string& EndpointTable::owner_of(const IpAddr& ip) const {
  auto o = owner_.find(ip);
  return o == owner_.end() ? kEmpty : o->second;
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
  for (const auto& [ip, id] : owner_) out.emplace(ip, endpoints_.at(id).workload);
  return out;
}

}  // namespace topowall::topology
