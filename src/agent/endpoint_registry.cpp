#include "agent/endpoint_registry.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <spdlog/spdlog.h>

namespace topowall::agent {

namespace {
std::uint64_t inode_of(const std::string& path) {
  struct stat st{};
  return !path.empty() && stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

bool contains(const std::vector<IpAddr>& v, const IpAddr& a) { return std::find(v.begin(), v.end(), a) != v.end(); }
}  // namespace

EndpointRegistry::EndpointRegistry(topology::EndpointTable& table, const topology::IdentityConfig& identity,
                                   AddressWatcher* addresses, ClusterStore* cluster)
    : table_(table), identity_(identity), addresses_(addresses), cluster_(cluster) {}

void EndpointRegistry::on_discovery(const DiscoveryEvent& ev, Source src) {
  try {
    switch (ev.kind) {
      case DiscoveryEvent::Kind::synced:
        (src == Source::runtime ? runtime_synced_ : netns_synced_) = true;
        hooks_.synced();
        return;
      case DiscoveryEvent::Kind::remove:
        remove(ev.id);
        return;
      case DiscoveryEvent::Kind::upsert:
        upsert(ev, src);
        return;
    }
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("discovery event failed: {}", e.what());
  }
}

void EndpointRegistry::upsert(const DiscoveryEvent& ev, Source src) {
  ++counters_.upserts;
  if (ev.seen != std::chrono::steady_clock::time_point{}) hooks_.event_seen(ev.seen);
  const auto& id = ev.info.id;
  auto& raw = raw_[id];
  bool fresh = raw.info.id.empty() || raw.info.netns_path != ev.info.netns_path;
  raw.info = ev.info;
  raw.source = src;
  raw.ns_inode = inode_of(ev.info.netns_path);
  apply(id);
  if (fresh && addresses_ && !ev.info.netns_path.empty())
    addresses_->watch(id, ev.info.netns_path, [this, id](const AddressSnapshot& a) { on_addresses(id, a); });
  // A container's namespace may also be a named one: the container wins.
  if (src == Source::runtime)
    for (auto& [oid, r] : raw_)
      if (r.source == Source::netns && r.ns_inode && r.ns_inode == raw.ns_inode) drop_local(oid);
}

void EndpointRegistry::on_addresses(const std::string& id, const AddressSnapshot& snap) {
  auto it = raw_.find(id);
  if (it == raw_.end()) return;
  it->second.in_netns = snap.addrs;
  it->second.ports = snap.ports;
  apply(id);
}

bool EndpointRegistry::shadowed(const std::string& id) const {
  const auto& r = raw_.at(id);
  if (r.source != Source::netns || !r.ns_inode) return false;
  for (const auto& [oid, o] : raw_)
    if (o.source == Source::runtime && o.ns_inode == r.ns_inode) return true;
  return false;
}

// An address seen inside a namespace that the runtime assigned to another endpoint: a container with
// NET_ADMIN added it to claim that endpoint's address. The runtime's word wins; the claim is counted.
bool EndpointRegistry::assigned_elsewhere(const std::string& id, const IpAddr& a) {
  for (const auto& [oid, o] : raw_)
    if (oid != id && contains(o.info.addresses, a)) {
      if (refused_claims_.insert({id, a}).second) {
        ++counters_.claims_refused;
        spdlog::warn("endpoint {} shows address {}, which the runtime assigned to {}: ignored", id.substr(0, 12),
                     a.to_string(), oid.substr(0, 12));
      }
      return true;
    }
  return false;
}

void EndpointRegistry::apply(const std::string& id) {
  const auto& raw = raw_.at(id);
  if (shadowed(id)) return;
  EndpointInfo info = raw.info;
  for (const auto& a : raw.in_netns)
    if (!contains(info.addresses, a) && !assigned_elsewhere(id, a)) info.addresses.push_back(a);
  info.ports = raw.ports;
  auto workload = topology::workload_identity(info, identity_);
  const auto* prev = table_.find(id);
  bool changed = !prev || prev->workload != workload || prev->info.addresses != info.addresses ||
                 prev->info.ports != info.ports;
  if (!prev) spdlog::info("endpoint {} ({}) joined workload {}", info.name, id.substr(0, 12), workload);
  hooks_.workload_seen(workload, &info.labels);
  if (changed && cluster_) cluster_->publish({"", id, workload, info.name, info.addresses});
  std::vector<IpAddr> reported;  // an address whose port changed needs its guard element patched
  if (prev) {
    for (const auto& [a, port] : info.ports)
      if (auto it = prev->info.ports.find(a); it == prev->info.ports.end() || it->second != port) reported.push_back(a);
    for (const auto& [a, port] : prev->info.ports)
      if (!info.ports.count(a)) reported.push_back(a);
  }
  auto moved = table_.upsert(workload, std::move(info));
  moved.insert(moved.end(), reported.begin(), reported.end());
  if (!changed) return;
  hooks_.changed(moved);  // a new endpoint is enforced within this loop turn
  hooks_.resolvable();
}

void EndpointRegistry::remove(const std::string& id) {
  auto it = raw_.find(id);
  if (it == raw_.end()) return;
  ++counters_.removes;
  hooks_.before_remove();
  if (addresses_) addresses_->unwatch(id);
  if (const auto* ep = table_.find(id)) spdlog::info("endpoint {} left workload {}", ep->info.name, ep->workload);
  drop_local(id);
  raw_.erase(it);
  // Its claims were logged once for its life: kept, they would grow with every container that claimed.
  std::erase_if(refused_claims_, [&](const auto& claim) { return claim.first == id; });
}

void EndpointRegistry::drop_local(const std::string& id) {
  auto freed = table_.remove(id);
  hooks_.changed(freed);
  if (cluster_) cluster_->withdraw(id);
  // A remote claim that a local endpoint overrode may now stand.
  for (const auto& [rid, r] : remote_)
    for (const auto& a : r.addresses)
      if (contains(freed, a)) {
        apply_remote(rid);
        break;
      }
}

void EndpointRegistry::on_cluster(const ClusterEvent& ev) {
  try {
    const auto id = "cluster:" + ev.endpoint.node + "/" + ev.endpoint.id;
    switch (ev.kind) {
      case ClusterEvent::Kind::synced: return on_cluster_synced();
      case ClusterEvent::Kind::remove: drop_remote(id); return;
      case ClusterEvent::Kind::decision: return;  // not an endpoint
      case ClusterEvent::Kind::upsert: break;
    }
    // The codec refuses `host` and `world`; names only this node reserves are refused here.
    if (topology::is_reserved_name(ev.endpoint.workload, identity_)) {
      spdlog::warn("cluster endpoint {} refused: workload name '{}' is reserved on this node", id, ev.endpoint.workload);
      drop_remote(id);
      return;
    }
    remote_[id] = ev.endpoint;
    restored_.erase(id);
    apply_remote(id);
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    spdlog::error("cluster event failed: {}", e.what());
  }
}

void EndpointRegistry::restore(const std::vector<ClusterEndpoint>& saved) {
  for (const auto& e : saved) {
    const auto id = "cluster:" + e.node + "/" + e.id;
    remote_[id] = e;
    restored_.insert(id);
    apply_remote(id);
  }
  if (!saved.empty())
    spdlog::info("{} remote endpoints restored from the state; in force until etcd has been read again", saved.size());
}

void EndpointRegistry::on_cluster_synced() {
  cluster_synced_ = true;
  if (!restored_.empty())
    spdlog::info("{} remote endpoints from the state are no longer in etcd: dropped", restored_.size());
  for (const auto& id : restored_) drop_remote(id);
  restored_.clear();
}

std::vector<const ClusterEndpoint*> EndpointRegistry::remote_endpoints() const {
  std::vector<const ClusterEndpoint*> out;
  out.reserve(remote_.size());
  for (const auto& [id, e] : remote_) out.push_back(&e);
  return out;
}

void EndpointRegistry::drop_remote(const std::string& id) {
  remote_.erase(id);
  hooks_.changed(table_.remove(id));
}

void EndpointRegistry::apply_remote(const std::string& id) {
  const auto& r = remote_.at(id);
  EndpointInfo info;
  info.id = id;
  info.name = r.node + "/" + r.name;
  // What this node discovered itself wins: another node's (stale or false) claim never moves a local address.
  for (const auto& a : r.addresses) {
    const auto& owner = table_.owner_of(a);
    if (owner.empty() || owner.rfind("cluster:", 0) == 0) info.addresses.push_back(a);
  }
  const auto* prev = table_.find(id);
  if (prev && prev->workload == r.workload && prev->info.addresses == info.addresses) return;
  hooks_.workload_seen(r.workload, nullptr);
  hooks_.changed(table_.upsert(r.workload, std::move(info)));
  hooks_.resolvable();
}

}  // namespace topowall::agent
