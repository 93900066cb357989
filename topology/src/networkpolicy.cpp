// The learned graph as Kubernetes NetworkPolicy objects (`topowall topology export --format networkpolicy`).
#include <fmt/format.h>

#include <set>

#include "topowall/topology/exporters.hpp"
#include "topowall/topology/identity.hpp"

namespace topowall::topology {

namespace {

struct Split {
  std::string ns;   // "" for a plain (non-Kubernetes) name
  std::string app;  // what the pods' `label_key` label says
};

Split split(const std::string& name) {
  const auto ns = name_namespace(name);
  if (ns.empty()) return {"", name};
  return {std::string(ns), name.substr(ns.size() + 1)};
}

// A label value: empty, or [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63. Plain names may end in
// '-', '.' or '_' (a sanitised label); such a name came from no label, so no selector can pick its pods.
bool label_value_ok(std::string_view v) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  return !v.empty() && v.size() <= kMaxNameLength && alnum(v.front()) && alnum(v.back()) && is_plain_name(v);
}

// metadata.name is a DNS subdomain (lowercase): a name that had to change gets a hash of the original,
// so `Web` and `web` in one namespace stay two policies.
std::string policy_name(const std::string& app) {
  std::string out = "topowall-";
  for (char c : app) out.push_back((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : '-');
  while (out.back() == '-') out.pop_back();
  if (out != "topowall-" + app) {
    std::uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char c : app) h = (h ^ c) * 16777619u;
    out += fmt::format("-{:08x}", h);
  }
  return out;
}

struct Context {
  const std::string& label_key;
  const std::vector<NamedNetwork>& networks;
};

// One `from`/`to` entry's peers; "" if the peer cannot be expressed (then the rule is left out).
std::string peers(const Context& c, const std::string& self_ns, const std::string& name) {
  // Quoted: `{cidr: ::/0}` is not YAML (the export used to emit it).
  if (name == kWorld) return "    - ipBlock: {cidr: \"0.0.0.0/0\"}\n    - ipBlock: {cidr: \"::/0\"}\n";
  std::string blocks;
  for (const auto& n : c.networks)
    if (n.name == name) blocks += fmt::format("    - ipBlock: {{cidr: \"{}\"}}\n", n.cidr.to_string());
  if (!blocks.empty()) return blocks;
  const auto p = split(name);
  if (!label_value_ok(p.app)) return "";
  auto out = fmt::format("    - podSelector:\n        matchLabels: {{\"{}\": \"{}\"}}\n", c.label_key, p.app);
  // Another namespace's pods: the peer is those pods in that namespace (both selectors in one peer).
  if (!p.ns.empty() && p.ns != self_ns)
    out += fmt::format("      namespaceSelector:\n        matchLabels: {{\"kubernetes.io/metadata.name\": \"{}\"}}\n", p.ns);
  return out;
}

std::string port(const EdgeKey& k) {
  const char* p = k.proto == Proto::tcp ? "TCP" : k.proto == Proto::udp ? "UDP" : "SCTP";
  return fmt::format("    ports:\n    - {{protocol: {}, port: {}}}\n", p, k.port);
}

// The ingress and egress rules of workload `w`, and comments for the edges NetworkPolicy cannot say.
std::string rules(const Graph& g, const Context& c, const std::string& w, const std::string& ns) {
  std::string ingress, egress, skipped;
  for (const auto& [k, e] : g.edges()) {
    if (e.state == EdgeState::denied || k.src == kHost || k.dst == kHost || (k.src != w && k.dst != w)) continue;
    const bool in = k.dst == w;
    const auto& other = in ? k.src : k.dst;
    const auto peer = peers(c, ns, other);
    // A rule without ports would allow every port and protocol: ICMP edges are left out instead.
    if (is_icmp(k.proto) || peer.empty()) {
      skipped += fmt::format("# not expressible: {} -> {} {} {}\n", k.src, k.dst, to_string(k.proto), k.port);
      continue;
    }
    (in ? ingress : egress) += (in ? "  - from:\n" : "  - to:\n") + peer + port(k);
  }
  auto list = [](const std::string& r) { return r.empty() ? std::string(" []\n") : "\n" + r; };
  return "  ingress:" + list(ingress) + "  egress:" + list(egress) + skipped;
}

}  // namespace

std::string export_networkpolicy(const Graph& g, const std::string& label_key, const std::vector<NamedNetwork>& networks) {
  std::set<std::string> named;
  for (const auto& n : networks) named.insert(n.name);
  std::set<std::string> workloads;
  auto add = [&](const std::string& n) {
    if (n != kHost && n != kWorld && !named.count(n)) workloads.insert(n);
  };
  for (const auto& [name, rec] : g.workloads()) add(name);
  for (const auto& [k, e] : g.edges()) {
    add(k.src);
    add(k.dst);
  }
  const Context c{label_key, networks};
  std::string out;
  for (const auto& w : workloads) {
    const auto p = split(w);
    if (!label_value_ok(p.app)) {
      out += fmt::format("# {}: no pod carries it as a label value, no policy\n", w);
      continue;
    }
    out += fmt::format("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {}\n", policy_name(p.app));
    if (!p.ns.empty()) out += fmt::format("  namespace: {}\n", p.ns);
    out += fmt::format(
        "  labels: {{app.kubernetes.io/managed-by: topowall}}\n  annotations: {{topowall.io/workload: \"{}\"}}\nspec:\n"
        "  podSelector:\n    matchLabels: {{\"{}\": \"{}\"}}\n  policyTypes: [Ingress, Egress]\n",
        w, label_key, p.app);
    out += rules(g, c, w, p.ns);
  }
  return out;
}

}  // namespace topowall::topology
