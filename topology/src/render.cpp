// The compiled model as `nft -f` text: what the agent programs through
// libnftnl, spelled so nft can load it too (the benchmark baseline) and so
// `topowall rules show` shows exactly what is in the kernel.
#include <fmt/format.h>

#include <set>

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
  switch (p) {
    case 6: return "tcp";
    case 17: return "udp";
    case 132: return "sctp";
    default: return std::to_string(p);
  }
}

std::string hex(std::uint32_t v) { return fmt::format("0x{:08x}", v); }

}  // namespace

// The guard's sets and chains; `family` picks how the address family is matched and adds ARP on bridges.
void render_guard(std::string& o, const RulesetModel& m, const std::string& family) {
  const bool bridge = family == "bridge";
  auto proto = [&](const char* v) {
    return bridge ? fmt::format("meta protocol {} ", v[0] == '4' ? "ip" : "ip6") : fmt::format("meta nfproto ipv{} ", v);
  };
  auto port_elems = [](const std::map<IpAddr, std::uint32_t>& ports) {
    return elements(ports, [](const auto& e) { return fmt::format("{} . {}", e.second, e.first.to_string()); });
  };
  std::set<std::uint32_t> ports;
  for (const auto* p : {&m.port4, &m.port6})
    for (const auto& [a, port] : *p) ports.insert(port);
  if (bridge)
    for (auto [v, ep, addr] : {std::tuple{"4", &m.ep4, "ipv4_addr"}, std::tuple{"6", &m.ep6, "ipv6_addr"}})
      o += fmt::format("\tset eps{} {{\n\t\ttype {}\n{}\t}}\n", v, addr,
                       elements(*ep, [](const auto& e) { return e.first.to_string(); }));
  o += fmt::format("\tset gports {{\n\t\ttype iface_index\n{}\t}}\n", elements(ports, [](std::uint32_t p) { return std::to_string(p); }));
  o += fmt::format("\tset gsrc4 {{\n\t\ttype iface_index . ipv4_addr\n{}\t}}\n", port_elems(m.port4));
  o += fmt::format("\tset gsrc6 {{\n\t\ttype iface_index . ipv6_addr\n{}\t}}\n", port_elems(m.port6));
  o += fmt::format("\tmap gunclassified {{\n\t\ttype ifname : verdict\n{}\t}}\n",
                   m.unclassified_drop ? "\t\telements = { \"veth\" : goto alert_drop_unclassified }\n" : "");
  o += "\tset gnd6 {\n\t\ttype icmpv6_type\n\t\telements = { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit,\n"
       "\t\t\t     nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report }\n\t}\n";
  o += fmt::format("\tchain guard {{\n\t\ttype filter hook prerouting priority {}; policy accept;\n", m.cfg.guard_priority);
  // The order of rules.cpp's guard_pass_rules: on bridges a port's own address first (most packets leave there).
  const std::string not_veth = "\t\tmeta iifkind != \"veth\" accept\n";
  const auto own = fmt::format("\t\t{}iif . ip saddr @gsrc4 accept\n\t\t{}iif . ip6 saddr @gsrc6 accept\n", proto("4"), proto("6"));
  o += bridge ? own + not_veth : not_veth + own;
  o += fmt::format("\t\t{}meta l4proto ipv6-icmp ip6 saddr fe80::/10 icmpv6 type @gnd6 accept\n", proto("6"));
  o += fmt::format("\t\t{}meta l4proto ipv6-icmp ip6 saddr :: icmpv6 type @gnd6 accept\n", proto("6"));
  if (bridge) o += "\t\tmeta protocol arp iif . arp saddr ip @gsrc4 accept\n\t\tmeta protocol arp arp saddr ip 0.0.0.0 accept\n";
  o += "\t\tiif @gports goto alert_drop_spoof\n";
  o += fmt::format("\t\t{}ip saddr @eps4 goto alert_drop_spoof\n\t\t{}ip6 saddr @eps6 goto alert_drop_spoof\n", proto("4"), proto("6"));
  if (bridge) o += "\t\tmeta protocol arp arp saddr ip @eps4 goto alert_drop_spoof\n";
  o += "\t\tmeta iifkind vmap @gunclassified\n\t}\n";
  for (auto reason : {"spoof", "unclassified"})
    o += fmt::format(
        "\tchain alert_drop_{0} {{\n\t\tlimit rate {1}/second burst {2} packets log prefix \"topowall:drop:{0}\" group {3} snaplen 128 "
        "queue-threshold 1\n\t\tcounter drop\n\t}}\n",
        reason, m.cfg.alert_rate, m.cfg.alert_burst, m.cfg.nflog_group);
}

namespace {

// Accept what has no endpoint on either side: not ours to judge.
std::string not_ours() {
  std::string t;
  for (auto [v, ip] : {std::pair{"4", "ip"}, std::pair{"6", "ip6"}})
    t += fmt::format("\t\tmeta nfproto ipv{0} {1} saddr != @eps{0} {1} daddr != @eps{0} accept\n", v, ip);
  return t;
}

// Who an address is (endpoints, networks), the modes, and what is allowed.
void render_sets(std::string& o, const RulesetModel& m) {
  const auto mask = m.cfg.mark_mask;
  auto set = [&](const std::string& name, const std::string& type, const std::string& flags, const std::string& elems,
                 bool counter = false) {
    o += fmt::format("\tset {} {{\n\t\ttype {}\n{}{}{}\t}}\n", name, type, flags.empty() ? "" : "\t\tflags " + flags + "\n",
                     counter ? "\t\tcounter\n" : "", elems);
  };
  auto map = [&](const std::string& name, const std::string& type, const std::string& flags, const std::string& elems) {
    o += fmt::format("\tmap {} {{\n\t\ttype {}\n{}{}\t}}\n", name, type, flags.empty() ? "" : "\t\tflags " + flags + "\n", elems);
  };
  for (auto [v, ep, net, addr] : {std::tuple{"4", &m.ep4, &m.net4, "ipv4_addr"}, std::tuple{"6", &m.ep6, &m.net6, "ipv6_addr"}}) {
    set(std::string("eps") + v, addr, "", elements(*ep, [](const auto& e) { return e.first.to_string(); }));
    map(std::string("ids") + v, std::string(addr) + " : mark", "",
        elements(*ep, [](const auto& e) { return fmt::format("{} : {}", e.first.to_string(), hex(e.second)); }));
    auto range = [](const Interval& i) { return i.first.to_string() + "-" + i.last.to_string(); };
    map(std::string("net") + v, std::string(addr) + " : mark", "interval",
        elements(*net, [&](const Interval& i) { return fmt::format("{} : {}", range(i), hex(i.id)); }));
    for (auto [mode, ids] : {std::pair{"enforced", &m.enforced}, std::pair{"monitored", &m.monitored}}) {
      std::vector<IpAddr> addrs;
      for (const auto& [a, id] : *ep)
        if (ids->count(id)) addrs.push_back(a);
      set(std::string(mode) + v, addr, "", elements(addrs, [](const IpAddr& a) { return a.to_string(); }));
    }
  }
  map("srcchain", "mark : verdict", "", elements(m.ids, [&](std::uint32_t id) { return fmt::format("{} : jump src_{}", hex(id), id); }));
  {
    std::vector<AllowKey> ports, icmp, icmp6;
    for (const auto& k : m.allow) (k.proto == 1 ? icmp : k.proto == 58 ? icmp6 : ports).push_back(k);
    auto ids = [&](const AllowKey& k) { return fmt::format("{} . {}", hex(mark_value(mask, k.src)), hex(k.dst)); };
    set("allow", "mark . mark . inet_proto . inet_service", "", elements(ports, [&](const AllowKey& k) {
          return fmt::format("{} . {} . {}", ids(k), proto_name(k.proto), k.port);
        }), true);
    set("allow_icmp", "mark . mark . icmp_type", "",
        elements(icmp, [&](const AllowKey& k) { return fmt::format("{} . {}", ids(k), k.port); }), true);
    set("allow_icmp6", "mark . mark . icmpv6_type", "",
        elements(icmp6, [&](const AllowKey& k) { return fmt::format("{} . {}", ids(k), k.port); }), true);
  }
  set("failsafe", "inet_proto . inet_service", "",
      elements(m.cfg.failsafe, [](const PortKey& k) { return fmt::format("{} . {}", proto_name(k.proto), k.port); }));
}

// The hooks and `check`: the source's and destination's ids, then the allow sets.
void render_check(std::string& o, const RulesetModel& m) {
  const auto mask = m.cfg.mark_mask;
  const auto keep = hex(~mask);
  for (const char* hook : {"prerouting", "output"})
    o += fmt::format(
        "\tchain {0} {{\n\t\ttype filter hook {0} priority {1}; policy accept;\n\t\tct state established,related accept\n"
        "\t\tjump check\n\t}}\n",
        hook, m.cfg.priority);
  auto into_scratch = [&](const char* dir, const char* map, const char* guard) {
    for (auto [v, ip] : {std::pair{"4", "ip"}, std::pair{"6", "ip6"}})
      o += fmt::format("\t\t{}meta nfproto ipv{} ct mark set {} {} map @{}{}\n", guard, v, ip, dir, map, v);
  };
  o += "\tchain check {\n"
       "\t\tmeta nfproto ipv6 icmpv6 type 130-143 accept\n"
       "\t\tct state invalid goto invalid\n"
       "\t\tct mark & " + hex(~event_mark(mask)) + " != 0x00000000 goto taken\n"
       "\t\tct mark set 0x00000000\n";
  into_scratch("saddr", "ids", "");
  for (auto [v, ip] : {std::pair{"4", "ip"}, std::pair{"6", "ip6"}})
    o += fmt::format("\t\tct mark 0x00000000 meta nfproto ipv{} {} daddr != @eps{} accept\n", v, ip, v);
  into_scratch("saddr", "net", "ct mark 0x00000000 ");
  o += "\t\tct mark vmap @srcchain\n";
  into_scratch("daddr", "ids", "");
  into_scratch("daddr", "net", "ct mark 0x00000000 ");
  const auto clean = fmt::format("meta mark set meta mark & {} ct mark set 0x00000000 goto allowed", keep);
  o += fmt::format("\t\tmeta mark & {} . ct mark . meta l4proto . th dport @allow {}\n", hex(mask), clean);
  o += fmt::format("\t\tmeta l4proto icmp meta mark & {} . ct mark . icmp type @allow_icmp {}\n", hex(mask), clean);
  o += fmt::format("\t\tmeta l4proto ipv6-icmp meta mark & {} . ct mark . icmpv6 type @allow_icmp6 {}\n", hex(mask), clean);
  o += "\t\tct mark set 0x00000000 goto judge\n\t}\n";
  for (auto id : m.ids) {
    o += fmt::format("\tchain src_{} {{\n\t\tmeta mark set meta mark & {} | {} ct mark set 0x00000000\n\t}}\n", id, keep,
                     hex(mark_value(mask, id)));
  }
  o += "\tchain invalid {\n" + not_ours() + "\t\tdrop\n\t}\n";
}

// What happens after the allow sets: allowed, judged (drop or pass, with an alert) and the events bit.
void render_verdicts(std::string& o, const RulesetModel& m) {
  const auto mask = m.cfg.mark_mask;
  const auto keep = hex(~mask);
  const auto events = hex(event_mark(mask));
  o += "\tchain allowed {\n";
  for (auto mode : {"enforced", "monitored"})
    for (auto [v, ip] : {std::pair{"4", "ip"}, std::pair{"6", "ip6"}})
      for (auto dir : {"saddr", "daddr"}) o += fmt::format("\t\tmeta nfproto ipv{} {} {} @{}{} accept\n", v, ip, dir, mode, v);
  o += fmt::format("\t\tct mark set {} accept\n\t}}\n", events);
  for (auto [chain, suffix] : {std::pair{"judge", ""}, std::pair{"taken", "_ctmark"}}) {
    o += fmt::format("\tchain {} {{\n", chain);
    if (std::string(suffix).size()) o += not_ours() + "\t\tcounter\n";
    o += fmt::format("\t\tmeta mark set meta mark & {}\n\t\tfib daddr type local meta l4proto . th dport @failsafe accept\n", keep);
    for (auto [mode, target] : {std::pair{"enforced", "alert_drop"}, std::pair{"monitored", "alert_pass"}})
      for (auto [v, ip] : {std::pair{"4", "ip"}, std::pair{"6", "ip6"}})
        for (auto dir : {"saddr", "daddr"})
          o += fmt::format("\t\tmeta nfproto ipv{} {} {} @{}{} goto {}{}\n", v, ip, dir, mode, v, target, suffix);
    o += fmt::format("\t\tct mark set ct mark | {}\n\t}}\n", events);
  }
  for (auto [suffix, reason] : {std::pair{"", ""}, std::pair{"_ctmark", ":ctmark"}})
    for (auto [chain, verdict] : {std::pair{"drop", "drop"}, std::pair{"pass", "accept"}})
      o += fmt::format(
          "\tchain alert_{0}{1} {{\n{7}\t\tlimit rate {3}/second burst {4} packets log prefix \"topowall:{0}{2}\" group {5} snaplen 128 "
          "queue-threshold 1\n\t\tcounter {6}\n\t}}\n",
          chain, suffix, reason, m.cfg.alert_rate, m.cfg.alert_burst, m.cfg.nflog_group, verdict,
          std::string(chain) == "pass" ? "\t\tct mark set ct mark | " + events + "\n" : "");
}

}  // namespace

std::string render_nft(const RulesetModel& m) {
  std::string o = fmt::format("table inet {} {{\n", m.cfg.table);
  render_sets(o, m);
  render_check(o, m);
  render_verdicts(o, m);
  if (!m.cfg.guard) return o + "}\n";
  render_guard(o, m, "inet");
  o += "}\n";
  // The bridge-family twin of the guard (bridged ports; see DESIGN.md).
  o += fmt::format("table bridge {} {{\n", m.cfg.table);
  render_guard(o, m, "bridge");
  o += "}\n";
  return o;
}

}  // namespace topowall::topology
