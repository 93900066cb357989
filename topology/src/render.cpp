// The compiled model as nft text. Sets and maps are exact `nft -f` syntax; the
// fixed rules chain map lookups into one concatenated key, which nft's grammar
// cannot spell, so they are shown in nft-like notation.
#include <fmt/format.h>

#include "topowall/topology/ruleset.hpp"

namespace topowall::topology {

namespace {

template <typename Range, typename Fn>
std::string elements(const Range& r, Fn fn) {
  std::string out;
  std::size_t n = 0;
  for (const auto& e : r) {
    out += (n++ % 4 == 0) ? (n == 1 ? "\n\t\t\t" : ",\n\t\t\t") : ", ";
    out += fn(e);
  }
  return out.empty() ? "" : "\t\telements = {" + out + " }\n";
}

std::string proto_name(std::uint8_t p) {
  auto proto = proto_from_number(p);
  return proto ? std::string(to_string(*proto)) : std::to_string(p);
}

}  // namespace

std::string render_nft(const RulesetModel& m) {
  std::string o = fmt::format("table inet {} {{\n", m.cfg.table);
  o += "\t# address -> workload id\n";
  for (auto [name, fam, map] : {std::tuple{"ep4", "ipv4_addr", &m.ep4}, std::tuple{"ep6", "ipv6_addr", &m.ep6}}) {
    o += fmt::format("\tmap {} {{\n\t\ttype {} : mark\n", name, fam);
    o += elements(*map, [](const auto& e) { return fmt::format("{} : {}", e.first.to_string(), e.second); });
    o += "\t}\n";
  }
  o += "\t# every other address -> host, named network or world id\n";
  for (auto [name, fam, v] : {std::tuple{"net4", "ipv4_addr", &m.net4}, std::tuple{"net6", "ipv6_addr", &m.net6}}) {
    o += fmt::format("\tmap {} {{\n\t\ttype {} : mark\n\t\tflags interval\n", name, fam);
    o += elements(*v, [](const Interval& i) {
      return fmt::format("{}-{} : {}", i.first.to_string(), i.last.to_string(), i.id);
    });
    o += "\t}\n";
  }
  o += "\t# allowed edges: source id . destination id . protocol . port (icmp: type)\n";
  o += "\tset allow {\n\t\ttype mark . mark . inet_proto . inet_service\n";
  o += elements(m.allow, [](const AllowKey& k) {
    return fmt::format("{} . {} . {} . {}", k.src, k.dst, proto_name(k.proto), k.port);
  });
  o += "\t}\n";
  for (auto [name, s] : {std::pair{"enforced", &m.enforced}, std::pair{"monitored", &m.monitored}}) {
    o += fmt::format("\tset {} {{\n\t\ttype mark\n", name);
    o += elements(*s, [](std::uint32_t id) { return std::to_string(id); });
    o += "\t}\n";
  }
  o += "\tset failsafe {\n\t\ttype inet_proto . inet_service\n";
  o += elements(m.cfg.failsafe, [](const PortKey& k) { return fmt::format("{} . {}", proto_name(k.proto), k.port); });
  o += "\t}\n";
  o += fmt::format(
      "\tchain forward {{\n\t\ttype filter hook forward priority {}; policy accept;\n\t\tjump check\n\t}}\n"
      "\tchain input {{\n\t\ttype filter hook input priority {}; policy accept;\n\t\tjump check\n\t}}\n",
      m.cfg.priority, m.cfg.priority);
  o += "\tchain check {\n"
       "\t\tct state established,related accept\n";
  for (auto [fam, ip, icmp] : {std::tuple{"ipv4", "ip", "icmp"}, std::tuple{"ipv6", "ip6", "icmpv6"}}) {
    std::string ep = std::string("@ep") + (fam[3] == '4' ? "4" : "6");
    std::string net = std::string("@net") + (fam[3] == '4' ? "4" : "6");
    o += fmt::format("\t\tmeta nfproto {} {} saddr != {} {} daddr != {} accept\n", fam, ip, ep, ip, ep);
  }
  o += "\t\tmeta nfproto ipv6 icmpv6 type 130-143 accept\n"
       "\t\tmeta l4proto . th dport @failsafe accept\n"
       "\t\tct state invalid drop\n";
  for (auto [fam, ip, icmp] : {std::tuple{"ipv4", "ip", "icmp"}, std::tuple{"ipv6", "ip6", "icmpv6"}}) {
    std::string n = fam[3] == '4' ? "4" : "6";
    for (auto [s, d] : {std::pair{"ep", "ep"}, std::pair{"ep", "net"}, std::pair{"net", "ep"}}) {
      o += fmt::format("\t\tmeta nfproto {} meta l4proto != {} {} saddr map @{}{} . {} daddr map @{}{} . meta l4proto . th dport @allow accept\n",
                       fam, icmp, ip, s, n, ip, d, n);
      o += fmt::format("\t\tmeta nfproto {} meta l4proto {} {} saddr map @{}{} . {} daddr map @{}{} . meta l4proto . {} type @allow accept\n",
                       fam, icmp, ip, s, n, ip, d, n, icmp);
    }
  }
  for (auto [fam, ip] : {std::pair{"ipv4", "ip"}, std::pair{"ipv6", "ip6"}}) {
    std::string n = fam[3] == '4' ? "4" : "6";
    o += fmt::format("\t\tmeta nfproto {} {} saddr map @ep{} @enforced goto alert_drop\n", fam, ip, n);
    o += fmt::format("\t\tmeta nfproto {} {} daddr map @ep{} @enforced goto alert_drop\n", fam, ip, n);
    o += fmt::format("\t\tmeta nfproto {} {} saddr map @ep{} @monitored goto alert_pass\n", fam, ip, n);
    o += fmt::format("\t\tmeta nfproto {} {} daddr map @ep{} @monitored goto alert_pass\n", fam, ip, n);
  }
  o += "\t}\n";
  o += fmt::format(
      "\tchain alert_drop {{\n\t\tlimit rate {}/second burst {} packets log prefix \"topowall:drop\" group {} queue-threshold 1\n"
      "\t\tcounter drop\n\t}}\n"
      "\tchain alert_pass {{\n\t\tlimit rate {}/second burst {} packets log prefix \"topowall:pass\" group {} queue-threshold 1\n"
      "\t\tcounter accept\n\t}}\n",
      m.cfg.alert_rate, m.cfg.alert_burst, m.cfg.nflog_group, m.cfg.alert_rate, m.cfg.alert_burst, m.cfg.nflog_group);
  o += "}\n";
  return o;
}

}  // namespace topowall::topology
