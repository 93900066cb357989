#include "nft/elements.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace topowall::nft {

namespace {
// nft's datatype ids; a concatenation packs them 6 bits apart.
constexpr std::uint32_t kIpAddr = 7, kIp6Addr = 8, kInetProto = 12, kInetService = 13, kIcmpType = 14, kMark = 19,
                        kIcmp6Type = 29;
constexpr std::uint32_t concat(std::initializer_list<std::uint32_t> ts) {
  std::uint32_t t = 0;
  for (auto x : ts) t = (t << 6) | x;
  return t;
}

Bytes addr(const IpAddr& a) { return Bytes(a.bytes.begin(), a.bytes.begin() + static_cast<long>(a.size())); }
Bytes u32(std::uint32_t v) {
  Bytes b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
// Trailing byte: 0 for an interval end, 1 for a start, so that at an equal key
// the end sorts (and is sent) first, as the kernel's rbtree expects.
Bytes with_flag(Bytes b, std::uint8_t start) {
  b.push_back(start);
  return b;
}
Bytes plus_one(Bytes b) {
  for (std::size_t i = b.size(); i-- > 0;)
    if (++b[i] != 0) break;
  return b;
}
bool all_ones(const Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0xff; });
}

// Disjoint intervals as the kernel's rbtree wants them: a start element per
// range, and an end element at last+1 unless the range runs to the top.
void put_intervals(ElementMap& out, const std::vector<topology::Interval>& v, const char* verb, const char* prefix) {
  for (const auto& i : v) {
    out[with_flag(addr(i.first), 1)] = text(verdict_text(std::string(verb) == "jump", fmt::format("{}{}", prefix, i.id)));
    auto last = addr(i.last);
    if (!all_ones(last)) out[with_flag(plus_one(last), 0)] = {};
  }
}
}  // namespace

std::string verdict_text(bool jump, const std::string& chain) { return (jump ? "jump " : "goto ") + chain; }

Layout layout(const topology::RulesetModel& m) {
  Layout l;
  auto add_set = [&](SetSpec s) {
    l.elements[s.name];
    l.set_order.push_back(s.name);
    l.sets[s.name] = std::move(s);
  };
  const auto mask = m.cfg.mark_mask;
  for (auto [v, ep, net, key_len, key_type] :
       {std::tuple{"4", &m.ep4, &m.net4, 4u, kIpAddr}, std::tuple{"6", &m.ep6, &m.net6, 16u, kIp6Addr}}) {
    std::string s(v);
    add_set({"eps" + s, key_len, key_type});
    add_set({"src" + s, key_len, key_type, DataKind::verdict});
    add_set({"dst" + s, key_len, key_type, DataKind::verdict});
    add_set({"srcnet" + s, key_len, key_type, DataKind::verdict, true});
    add_set({"dstnet" + s, key_len, key_type, DataKind::verdict, true});
    add_set({"enforced" + s, key_len, key_type});
    add_set({"monitored" + s, key_len, key_type});
    for (const auto& [a, id] : *ep) {
      l.elements["eps" + s][addr(a)] = {};
      l.elements["src" + s][addr(a)] = text(verdict_text(true, fmt::format("src_{}", id)));
      l.elements["dst" + s][addr(a)] = text(verdict_text(false, fmt::format("dst_{}", id)));
      if (m.enforced.count(id)) l.elements["enforced" + s][addr(a)] = {};
      if (m.monitored.count(id)) l.elements["monitored" + s][addr(a)] = {};
    }
    put_intervals(l.elements["srcnet" + s], *net, "jump", "src_");
    put_intervals(l.elements["dstnet" + s], *net, "goto", "dst_");
  }
  add_set({"failsafe", 8, concat({kInetProto, kInetService})});
  for (const auto& f : m.cfg.failsafe)
    l.elements["failsafe"][Bytes{f.proto, 0, 0, 0, static_cast<std::uint8_t>(f.port >> 8),
                                 static_cast<std::uint8_t>(f.port), 0, 0}] = {};

  l.chains = {{"forward", ChainKind::forward}, {"input", ChainKind::input}, {"check", ChainKind::check}};
  for (auto id : m.ids) {
    add_set({fmt::format("in_{}", id), 12, concat({kMark, kInetProto, kInetService})});
    add_set({fmt::format("icmp_{}", id), 8, concat({kMark, kIcmpType})});
    add_set({fmt::format("icmp6_{}", id), 8, concat({kMark, kIcmp6Type})});
    l.chains.push_back({fmt::format("src_{}", id), ChainKind::src, id});
    l.chains.push_back({fmt::format("dst_{}", id), ChainKind::dst, id});
  }
  for (const auto& k : m.allow) {
    Bytes key = u32(topology::mark_value(mask, k.src));
    if (k.proto == 1 || k.proto == 58) {
      key.insert(key.end(), {static_cast<std::uint8_t>(k.port), 0, 0, 0});
      l.elements[fmt::format("{}_{}", k.proto == 1 ? "icmp" : "icmp6", k.dst)][key] = {};
    } else {
      key.insert(key.end(), {k.proto, 0, 0, 0, static_cast<std::uint8_t>(k.port >> 8), static_cast<std::uint8_t>(k.port), 0, 0});
      l.elements[fmt::format("in_{}", k.dst)][key] = {};
    }
  }
  l.chains.push_back({"verdict", ChainKind::verdict});
  l.chains.push_back({"alert_drop", ChainKind::alert_drop});
  l.chains.push_back({"alert_pass", ChainKind::alert_pass});
  return l;
}

std::size_t LayoutDiff::element_changes() const {
  std::size_t n = 0;
  for (const auto& [k, v] : del) n += v.size();
  for (const auto& [k, v] : add) n += v.size();
  return n;
}

bool LayoutDiff::empty() const {
  return add_sets.empty() && del_sets.empty() && add_chains.empty() && del_chains.empty() && flush_chains.empty() &&
         element_changes() == 0;
}

LayoutDiff diff(const Layout& have, const Layout& want) {
  LayoutDiff d;
  for (const auto& [name, spec] : want.sets)
    if (!have.sets.count(name)) d.add_sets.push_back(spec);
  for (const auto& [name, spec] : have.sets)
    if (!want.sets.count(name)) d.del_sets.push_back(name);
  std::set<std::string> have_chains, want_chains;
  for (const auto& c : have.chains) have_chains.insert(c.name);
  for (const auto& c : want.chains) {
    want_chains.insert(c.name);
    if (!have_chains.count(c.name)) d.add_chains.push_back(c);
  }
  for (const auto& c : have.chains)
    if (!want_chains.count(c.name)) d.del_chains.push_back(c.name);
  for (const auto& c : want.chains)
    if (have.damaged.count(c.name)) {
      d.flush_chains.push_back(c.name);
      d.add_chains.push_back(c);
    }
  static const ElementMap kEmpty;
  for (const auto& [name, spec] : want.sets) {
    auto h = have.elements.find(name);
    const auto& hv = h == have.elements.end() ? kEmpty : h->second;
    const auto& wv = want.elements.at(name);
    if (have.sets.count(name))
      for (const auto& [k, v] : hv) {
        auto it = wv.find(k);
        if (it == wv.end() || it->second != v) d.del[name].emplace_back(k, v);
      }
    for (const auto& [k, v] : wv) {
      auto it = hv.find(k);
      if (it == hv.end() || it->second != v) d.add[name].emplace_back(k, v);
    }
  }
  return d;
}

}  // namespace topowall::nft
