// Synthetic rulesets: topowall's model at a chosen size, and naive tables of one rule per edge.
#include <netinet/in.h>

#include <random>

#include "common.hpp"

namespace topowall::bench {

// `endpoints` addresses over 1000 workloads (ids 16..), `edges` random edges, and
// the lab's client (id 16) -> server (id 17) tcp/port edge; every workload enforced.
// `client_port`/`server_port`: the lab hosts' host-side ports, so the guard lets them send; every synthetic
// endpoint gets a port of its own too, so the guard's sets are as large as on a real node.
topology::RulesetModel synthetic(const std::string& table, std::size_t endpoints, std::size_t edges,
                                 const std::string& client, const std::string& server, int port,
                                 std::uint32_t client_port, std::uint32_t server_port) {
  topology::RulesetModel m;
  m.cfg.table = table;
  std::mt19937 rng(42);
  const std::uint32_t workloads = 1000;
  for (std::uint32_t i = 0; i < workloads; ++i) m.ids.insert(16 + i);
  m.ids.insert(topology::kHostId);
  m.ids.insert(topology::kWorldId);
  for (std::size_t i = 0; i < endpoints; ++i) {
    auto a = IpAddr::v4(0x0ac80000 + static_cast<std::uint32_t>(i));
    m.ep4[a] = 16 + static_cast<std::uint32_t>(i % workloads);
    m.port4[a] = 1000000 + static_cast<std::uint32_t>(i);
  }
  m.ep4[*IpAddr::parse(client)] = 16;
  m.ep4[*IpAddr::parse(server)] = 17;
  if (client_port) m.port4[*IpAddr::parse(client)] = client_port;
  if (server_port) m.port4[*IpAddr::parse(server)] = server_port;
  m.net4 = topology::disjoint_intervals(AF_INET, {}, topology::kWorldId);
  m.net6 = topology::disjoint_intervals(AF_INET6, {}, topology::kWorldId);
  while (m.allow.size() < edges)
    m.allow.insert({16 + static_cast<std::uint32_t>(rng() % workloads), 16 + static_cast<std::uint32_t>(rng() % workloads), 6,
                    static_cast<std::uint16_t>(1 + rng() % 65000)});
  m.allow.insert({16, 17, 6, static_cast<std::uint16_t>(port)});
  m.allow.insert({16, 17, 6, 5201});  // iperf3
  for (auto id : m.ids)
    if (id >= 16) m.enforced.insert(id);
  m.cfg.failsafe = {};
  return m;
}

// A naive firewall: one rule per allowed edge, the lab's rule last. With
// `workload_sets`, each rule names its workloads' addresses (the synthetic
// workloads have 10 replicas), as selector-based policy engines write them;
// without, a rule is one address pair (a cheaper match than any real edge needs).
std::string naive_ruleset(const std::string& table, std::size_t rules, const std::string& client, const std::string& server,
                          int port, const std::string& lab_net, bool workload_sets) {
  std::mt19937 rng(43);
  const std::uint32_t endpoints = 10000, workloads = 1000;
  auto replicas = [&](std::uint32_t w) {
    std::string v;
    for (std::uint32_t a = w; a < endpoints; a += workloads)
      v += (v.empty() ? "" : ", ") + IpAddr::v4(0x0ac80000 + a).to_string();
    return "{ " + v + " }";
  };
  std::string s = fmt::format("table inet {} {{\n chain forward {{\n  type filter hook forward priority -5; policy accept;\n"
                              "  ct state established,related accept\n",
                              table);
  for (std::size_t i = 0; i + 1 < rules; ++i) {
    if (workload_sets) {
      std::uint32_t src = rng() % workloads, dst = rng() % workloads;
      s += fmt::format("  ip saddr {} ip daddr {} tcp dport {} accept\n", replicas(src), replicas(dst), 1 + rng() % 65000);
    } else {
      s += fmt::format("  ip saddr {} ip daddr {} tcp dport {} accept\n", IpAddr::v4(0x0ac80000 + rng() % endpoints).to_string(),
                       IpAddr::v4(0x0ac80000 + rng() % endpoints).to_string(), 1 + rng() % 65000);
    }
  }
  s += fmt::format("  ip saddr {} ip daddr {} tcp dport {{ {}, 5201 }} accept\n  ip saddr {} drop\n }}\n}}\n", client, server, port, lab_net);
  return s;
}

}  // namespace topowall::bench
