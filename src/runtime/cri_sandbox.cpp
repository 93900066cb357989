#include "runtime/cri_status.hpp"

#include <spdlog/spdlog.h>

#include "cri/cri.pb.h"
#include "runtime/host_netns.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::runtime {

namespace v1 = ::runtime::v1;
using nlohmann::json;

namespace {
// The network namespace in an OCI runtime spec: linux.namespaces[type == "network"].path.
std::string spec_netns(const json& spec) {
  const json* ns = nullptr;
  if (spec.contains("linux") && spec["linux"].is_object() && spec["linux"].contains("namespaces"))
    ns = &spec["linux"]["namespaces"];
  if (!ns || !ns->is_array()) return {};
  for (const auto& n : *ns)
    if (n.is_object() && n.value("type", "") == "network" && n.contains("path") && n["path"].is_string())
      return n["path"].get<std::string>();
  return {};
}

bool same(const EndpointInfo& a, const EndpointInfo& b) {
  return a.name == b.name && a.pod_namespace == b.pod_namespace && a.labels == b.labels &&
         a.netns_path == b.netns_path && a.addresses == b.addresses && a.pid == b.pid;
}
}  // namespace

VerboseInfo parse_verbose_info(const std::map<std::string, std::string>& info) {
  VerboseInfo out;
  // containerd and CRI-O answer {"info": "<JSON>"}; the key is not part of the API, so every value is tried.
  for (const auto& [key, text] : info) {
    auto j = topology::parse_json(text);
    if (!j || !j->is_object()) continue;
    if (j->contains("pid") && (*j)["pid"].is_number_integer()) out.pid = (*j)["pid"].get<int>();
    if (j->contains("runtimeSpec") && (*j)["runtimeSpec"].is_object() && out.netns_path.empty())
      out.netns_path = spec_netns((*j)["runtimeSpec"]);
  }
  if (out.netns_path.empty() && out.pid > 0) out.netns_path = "/proc/" + std::to_string(out.pid) + "/ns/net";
  return out;
}

Result<Sandbox> sandbox_from_status(const v1::PodSandboxStatusResponse& r) {
  const auto& st = r.status();
  if (st.id().empty()) return Error{"CRI pod sandbox status without an id"};
  Sandbox s;
  s.info.kind = EndpointKind::container;
  s.info.id = st.id();
  s.info.name = st.metadata().name();
  s.info.pod_namespace = st.metadata().namespace_();
  s.info.labels = {st.labels().begin(), st.labels().end()};
  s.host_network = st.linux().namespaces().options().network() == v1::NODE;
  if (s.host_network) return s;
  auto add = [&](const std::string& text) -> Status {
    if (text.empty()) return ok_status();
    auto ip = IpAddr::parse(text);
    if (!ip) return Error{"CRI pod " + s.info.pod_namespace + "/" + s.info.name + " has address '" + text +
                          "', which is not an IP address"};
    s.info.addresses.push_back(*ip);
    return ok_status();
  };
  if (auto ok = add(st.network().ip()); !ok) return ok.error();
  for (const auto& extra : st.network().additional_ips())
    if (auto ok = add(extra.ip()); !ok) return ok.error();
  auto vi = parse_verbose_info({r.info().begin(), r.info().end()});
  s.info.netns_path = vi.netns_path;
  s.info.pid = vi.pid;
  if (is_own_netns(s.info.netns_path)) s.host_network = true;
  return s;
}

void SandboxSet::apply(const std::vector<Sandbox>& now, std::chrono::steady_clock::time_point seen,
                       const DiscoveryHandler& handler, DiscoveryStats& stats) {
  std::set<std::string> listed;
  for (const auto& s : now) listed.insert(s.info.id);
  std::erase_if(host_, [&](const std::string& id) { return !listed.count(id); });
  for (auto it = known_.begin(); it != known_.end();) {
    if (listed.count(it->first)) {
      ++it;
      continue;
    }
    auto id = it->first;
    it = known_.erase(it);
    handler(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, id});
  }
  for (const auto& s : now) {
    if (s.host_network) {
      if (known_.erase(s.info.id)) handler(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, s.info.id});
      if (host_.insert(s.info.id).second) {
        ++stats.host_network;
        spdlog::info("pod {}/{} uses the node's network: its addresses are `host`, not a workload",
                     s.info.pod_namespace, s.info.name);
      }
      continue;
    }
    auto it = known_.find(s.info.id);
    if (it != known_.end() && same(it->second, s.info)) continue;
    known_[s.info.id] = s.info;
    handler(DiscoveryEvent{DiscoveryEvent::Kind::upsert, s.info, {}, seen});
  }
  if (!synced_) {
    synced_ = true;
    handler(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}});
  }
}

}  // namespace topowall::runtime
