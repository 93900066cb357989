#include "topowall/topology/radar.hpp"
#include "topowall/topology/usage.hpp"

#include <array>
#include <set>

#include "schema_fields.hpp"
#include "topowall/topology/identity.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::topology {

using nlohmann::json;

namespace {

// Labels that name a namespace, most specific first (Kubernetes, then plain, then compose projects).
constexpr std::array kNamespaceLabels{"io.kubernetes.pod.namespace", "namespace", "topowall.namespace",
                                      "io.podman.compose.project", "com.docker.compose.project"};

std::string network_of(const IpAddr& a) {
  Cidr c{a, a.is_v4() ? 24 : 64};
  // Zero the host bits so every member of the network names the same island.
  for (std::size_t i = static_cast<std::size_t>(c.prefix / 8); i < c.addr.size(); ++i) c.addr.bytes[i] = 0;
  return c.to_string();
}

// The pending flows a blocked packet hit within kRecentlyBlocked of `now`, by "src dst proto port".
std::set<std::string> recently_blocked(const json& alerts, TimePoint now) {
  std::set<std::string> out;
  for (const auto& a : alerts) {
    if (!a.is_object() || a.value("verdict", "") != "blocked" || !a.contains("time") || !a["time"].is_string()) continue;
    auto t = parse_time(a["time"].get<std::string>());
    if (!t || now - *t > kRecentlyBlocked) continue;
    out.insert(a.value("src", "") + " " + a.value("dst", "") + " " + a.value("proto", "") + " " +
               std::to_string(a.value("port", 0)));
  }
  return out;
}

struct NodeBuilder {
  const RadarInput& in;
  std::map<std::string, json> nodes;
  std::set<std::pair<std::string, std::string>> islands;  // id, kind

  void outside(const std::string& name, const char* kind) {
    if (nodes.count(name)) return;
    nodes[name] = json{{"id", name}, {"kind", kind}, {"island", "outside"}};
    islands.insert({"outside", "outside"});
  }

  void workload(const std::string& name) {
    if (nodes.count(name)) return;
    json n{{"id", name}, {"kind", "workload"}, {"replicas", 0}, {"labels", json::object()}};
    std::map<std::string, std::string> labels;
    if (auto it = in.graph.workloads().find(name); it != in.graph.workloads().end()) {
      labels = it->second.labels;
      n["first_seen"] = format_time(it->second.first_seen);
    }
    json containers = json::array(), addrs = json::array();
    std::vector<IpAddr> first;
    if (in.live)
      if (auto it = in.live->workloads().find(name); it != in.live->workloads().end()) {
        for (const auto* ep : it->second) {
          if (labels.empty()) labels = ep->info.labels;
          json caddrs = json::array();
          for (const auto& a : ep->info.addresses) {
            caddrs.push_back(a.to_string());
            addrs.push_back(a.to_string());
            if (first.empty()) first.push_back(a);
          }
          containers.push_back({{"id", ep->info.id}, {"name", ep->info.name}, {"image", ep->info.image},
                                {"addresses", std::move(caddrs)}});
        }
        n["replicas"] = containers.size();
      }
    n["labels"] = labels;
    n["containers"] = std::move(containers);
    n["addresses"] = std::move(addrs);
    if (in.modes) n["mode"] = to_string(in.modes->of(name));
    bool has_ns = name.find('/') != std::string::npos;
    for (const char* l : kNamespaceLabels) has_ns = has_ns || labels.count(l);
    auto island = island_of(name, labels, first);
    n["island"] = island;
    islands.insert({island, has_ns ? "namespace" : "network"});
    nodes[name] = std::move(n);
  }

  void end(const std::string& name, const std::set<std::string>& networks) {
    if (name == kHost) return outside(name, "host");
    if (name == kWorld) return outside(name, "world");
    if (networks.count(name)) return outside(name, "network");
    workload(name);
  }
};

}  // namespace

std::string island_of(const std::string& name, const std::map<std::string, std::string>& labels,
                      const std::vector<IpAddr>& addresses) {
  // A namespace-scoped name (`shop/web`, issue 13) carries its namespace even where no labels are known
  // (a remote node's workload, an imported graph): it wins over the labels, which the name came from.
  if (auto slash = name.find('/'); slash != std::string::npos && slash > 0) return name.substr(0, slash);
  for (const char* l : kNamespaceLabels)
    if (auto it = labels.find(l); it != labels.end() && !it->second.empty()) return it->second;
  if (!addresses.empty()) return network_of(addresses.front());
  return "workloads";
}

json radar_model(const RadarInput& in) {
  std::set<std::string> networks;
  if (in.live)
    for (const auto& n : in.live->external_networks()) networks.insert(n.name);
  NodeBuilder b{in, {}, {}};
  for (const auto& [name, rec] : in.graph.workloads()) b.end(name, networks);
  if (in.live)
    for (const auto& [name, ids] : in.live->workloads()) b.end(name, networks);
  for (const auto& n : networks) b.outside(n, "network");
  json edges = json::array();
  for (const auto& [k, e] : in.graph.edges()) {
    b.end(k.src, networks);
    b.end(k.dst, networks);
    json o = edge_to_json(k, e);  // as export writes it
    o["last_used"] = format_time(last_use(e));  // always: the radar shows how fresh an edge is
    edges.push_back(std::move(o));
  }
  const auto blocked = recently_blocked(in.alerts, in.now);
  for (const auto& [k, p] : in.graph.pending()) {
    b.end(k.src, networks);
    b.end(k.dst, networks);
    json o = schema_fields::key_fields(k);
    const auto key = k.src + " " + k.dst + " " + std::string(to_string(k.proto)) + " " + std::to_string(k.port);
    o["state"] = blocked.count(key) ? "blocked" : "pending";
    o["id"] = p.id;
    o["count"] = p.count;
    o["first_seen"] = format_time(p.first_seen);
    o["last_seen"] = format_time(p.last_seen);
    edges.push_back(std::move(o));
  }
  json islands = json::array(), nodes = json::array();
  for (const auto& [id, kind] : b.islands) islands.push_back({{"id", id}, {"kind", kind}});
  for (auto& [name, n] : b.nodes) nodes.push_back(std::move(n));
  json out{{"version", kRadarVersion}, {"generated", format_time(in.now)}, {"islands", std::move(islands)},
           {"nodes", std::move(nodes)},    {"edges", std::move(edges)},        {"alerts", in.alerts}};
  if (in.modes) out["mode"] = to_string(in.modes->global);
  return out;
}

std::string json_for_html(const json& j) {
  const auto text = j.dump();
  std::string out;
  out.reserve(text.size() + 64);
  for (char c : text) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

}  // namespace topowall::topology
