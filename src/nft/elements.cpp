#include "nft/elements.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace topowall::nft {

namespace {
// nft's datatype ids; a concatenation packs them 6 bits apart.
constexpr std::uint32_t kIpAddr = 7, kIp6Addr = 8, kInetProto = 12, kInetService = 13, kIcmpType = 14, kMark = 19,
                        kIfIndex = 20, kIcmp6Type = 29, kIfName = 41;
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
// range carrying the id, and an end element at last+1 unless the range runs to the top.
void put_intervals(ElementMap& out, const std::vector<topology::Interval>& v) {
  for (const auto& i : v) {
    out.put(with_flag(addr(i.first), 1), u32(i.id));
    auto last = addr(i.last);
    if (!all_ones(last)) out.put(with_flag(plus_one(last), 0));
  }
}

// Guard elements: port (ifindex, host order) . source address; the port alone; the interface kind
// ("veth", as the kernel's IFNAMSIZ string) whose unclassified ports are refused.
Bytes port_addr(std::uint32_t port, const IpAddr& a) {
  Bytes k = u32(port);
  auto ab = addr(a);
  k.insert(k.end(), ab.begin(), ab.end());
  return k;
}
Bytes ifname(const std::string& s) {
  Bytes b(16, 0);
  std::copy(s.begin(), s.end(), b.begin());
  return b;
}
const std::string kUnclassifiedTarget = "alert_drop_unclassified";
}  // namespace

std::string verdict_text(bool jump, const std::string& chain) { return (jump ? "jump " : "goto ") + chain; }

bool guard_set(const std::string& name) {
  return name == "gports" || name == "gsrc4" || name == "gsrc6" || name == "gunclassified" || name == "gnd6" ||
         name == "eps4" || name == "eps6";
}

namespace {
void put_guard(Layout& l, const topology::RulesetModel& m) {
  auto add = [&](SetSpec s) {
    l.elements[s.name];
    l.set_order.push_back(s.name);
    l.sets[s.name] = std::move(s);
  };
  add({"gports", 4, kIfIndex});
  add({"gsrc4", 8, concat({kIfIndex, kIpAddr})});
  add({"gsrc6", 20, concat({kIfIndex, kIp6Addr})});
  add({"gunclassified", 16, kIfName, DataKind::verdict});
  add({"gnd6", 1, kIcmp6Type});  // what a container may send from a link-local or the unspecified address
  for (std::uint8_t t : {130, 131, 132, 133, 135, 136, 143}) l.elements["gnd6"].put(Bytes{t});
  for (const auto* ports : {&m.port4, &m.port6})
    for (const auto& [a, port] : *ports) {
      l.elements[a.is_v4() ? "gsrc4" : "gsrc6"].put(port_addr(port, a));
      l.elements["gports"].put(u32(port));
    }
  if (m.unclassified_drop) l.elements["gunclassified"].put(ifname("veth"), text(verdict_text(false, kUnclassifiedTarget)));
}

void add_set(Layout& l, SetSpec s) {
  l.elements[s.name];
  l.set_order.push_back(s.name);
  l.sets[s.name] = std::move(s);
}

// An id's chain and its entry in the id -> chain dispatch map: the only jump
// verdicts keyed by anything. They change when a workload appears, never when
// an endpoint or an edge does (see DESIGN.md, "dispatch").
void add_id_objects(Layout& l, std::uint32_t id) {
  l.id_objects.insert(id);
  l.chains.push_back({fmt::format("src_{}", id), ChainKind::src, id});
  l.elements["srcchain"].put(u32(id), text(verdict_text(true, fmt::format("src_{}", id))));
}

// Set and key of one allowed edge: source mark . destination id . proto . port
// (or . icmp type), as the rules load them into four 32-bit registers.
std::pair<std::string, Bytes> allow_element(std::uint32_t mask, const topology::AllowKey& k) {
  Bytes key = u32(topology::mark_value(mask, k.src));
  auto dst = u32(k.dst);
  key.insert(key.end(), dst.begin(), dst.end());
  if (k.proto == 1 || k.proto == 58) {
    key.insert(key.end(), {static_cast<std::uint8_t>(k.port), 0, 0, 0});
    return {k.proto == 1 ? "allow_icmp" : "allow_icmp6", key};
  }
  key.insert(key.end(), {k.proto, 0, 0, 0, static_cast<std::uint8_t>(k.port >> 8), static_cast<std::uint8_t>(k.port), 0, 0});
  return {"allow", key};
}
}  // namespace

std::optional<topology::AllowKey> allow_key_of(std::uint32_t mask, const std::string& set, const Bytes& key) {
  const bool icmp = set == "allow_icmp" || set == "allow_icmp6";
  if ((!icmp && set != "allow") || key.size() != (icmp ? 12u : 16u)) return std::nullopt;
  std::uint32_t mark = 0, dst = 0;
  std::memcpy(&mark, key.data(), 4);
  std::memcpy(&dst, key.data() + 4, 4);
  topology::AllowKey k{};
  k.src = (mark & mask) >> topology::mark_shift(mask);
  k.dst = dst;
  if (icmp) {
    k.proto = set == "allow_icmp" ? 1 : 58;
    k.port = key[8];
  } else {
    k.proto = key[8];
    k.port = static_cast<std::uint16_t>(key[12] << 8 | key[13]);
  }
  return k;
}

Layout layout(const topology::RulesetModel& m) {
  Layout l;
  auto add_set = [&](SetSpec s) { nft::add_set(l, std::move(s)); };
  const auto mask = m.cfg.mark_mask;
  // Endpoints and networks map to ids (data maps: no jump verdict keyed by
  // an address, so the kernel never re-validates per endpoint change).
  for (auto [v, ep, net, key_len, key_type] :
       {std::tuple{"4", &m.ep4, &m.net4, 4u, kIpAddr}, std::tuple{"6", &m.ep6, &m.net6, 16u, kIp6Addr}}) {
    std::string s(v);
    add_set({"eps" + s, key_len, key_type});
    add_set({"ids" + s, key_len, key_type, DataKind::mark});
    add_set({"net" + s, key_len, key_type, DataKind::mark, true});
    add_set({"enforced" + s, key_len, key_type});
    add_set({"monitored" + s, key_len, key_type});
    auto &eps = l.elements["eps" + s], &ids = l.elements["ids" + s];
    auto &enforced = l.elements["enforced" + s], &monitored = l.elements["monitored" + s];
    for (const auto& [a, id] : *ep) {
      const auto key = addr(a);
      eps.put(key);
      ids.put(key, u32(id));
      if (m.enforced.count(id)) enforced.put(key);
      if (m.monitored.count(id)) monitored.put(key);
    }
    put_intervals(l.elements["net" + s], *net);
  }
  add_set({"srcchain", 4, kMark, DataKind::verdict});
  add_set({"allow", 16, concat({kMark, kMark, kInetProto, kInetService}), DataKind::none, false, true});
  add_set({"allow_icmp", 12, concat({kMark, kMark, kIcmpType}), DataKind::none, false, true});
  add_set({"allow_icmp6", 12, concat({kMark, kMark, kIcmp6Type}), DataKind::none, false, true});
  add_set({"failsafe", 8, concat({kInetProto, kInetService})});
  for (const auto& f : m.cfg.failsafe)
    l.elements["failsafe"].put(
        Bytes{f.proto, 0, 0, 0, static_cast<std::uint8_t>(f.port >> 8), static_cast<std::uint8_t>(f.port), 0, 0});

  // Prerouting after DNAT sees forwarded, bridged and host-bound traffic alike; output sees what the
  // node itself opens (host-network containers, proxies): judged under the identity `host`.
  l.chains = {{"prerouting", ChainKind::prerouting}, {"output", ChainKind::output}, {"check", ChainKind::check}};
  for (auto id : m.ids) add_id_objects(l, id);
  for (const auto& k : m.allow) {
    auto [set, key] = allow_element(mask, k);
    l.elements[set].put(key);
  }
  l.chains.push_back({"invalid", ChainKind::invalid});
  l.chains.push_back({"allowed", ChainKind::allowed});  // the order `topowall rules show` prints them in
  l.chains.push_back({"judge", ChainKind::judge});
  l.chains.push_back({"taken", ChainKind::taken});
  l.chains.push_back({"alert_drop", ChainKind::alert_drop});
  l.chains.push_back({"alert_pass", ChainKind::alert_pass});
  l.chains.push_back({"alert_drop_ctmark", ChainKind::alert_drop, 0, "ctmark"});
  l.chains.push_back({"alert_pass_ctmark", ChainKind::alert_pass, 0, "ctmark"});
  if (!m.cfg.guard) return l;
  put_guard(l, m);
  l.chains.push_back({"guard", ChainKind::guard});
  l.chains.push_back({"alert_drop_spoof", ChainKind::alert_drop, 0, "spoof"});
  l.chains.push_back({kUnclassifiedTarget, ChainKind::alert_drop, 0, "unclassified"});
  return l;
}

namespace {
// The guard's elements for the changed addresses: an address sits behind at most one port, so its old
// element is found by its key's tail (a scan of the node's local endpoints, no more).
void guard_patch(LayoutDiff& d, const ElementMap& src4, const ElementMap& src6, const ElementMap& ports,
                 const topology::RulesetModel& want, const std::vector<IpAddr>& addrs) {
  bool touched = false;
  for (const auto& a : addrs) {
    const auto& have = a.is_v4() ? src4 : src6;
    const auto& want_ports = a.is_v4() ? want.port4 : want.port6;
    const std::string set = a.is_v4() ? "gsrc4" : "gsrc6";
    auto ab = addr(a);
    auto w = want_ports.find(a);
    std::optional<Bytes> want_key;
    if (w != want_ports.end()) want_key = port_addr(w->second, a);
    // Compared in place: copying each element made this scan the cost of an endpoint patch at 100k.
    for (auto it = have.begin(); it != have.end(); ++it) {
      const auto k = it.key();
      if (k.size() < ab.size() || !std::equal(ab.begin(), ab.end(), k.end() - static_cast<long>(ab.size()))) continue;
      if (want_key && std::equal(k.begin(), k.end(), want_key->begin(), want_key->end())) continue;
      d.del[set].push_back(*it);
      touched = true;
    }
    if (want_key && !have.count(*want_key)) {
      d.add[set].emplace_back(*want_key, Bytes{});
      touched = true;
    }
  }
  if (!touched) return;
  ElementMap want_set;
  for (const auto* p : {&want.port4, &want.port6})
    for (const auto& [a, port] : *p) want_set.put(u32(port));
  for (const auto& [k, v] : ports)
    if (!want_set.count(k)) d.del["gports"].emplace_back(k, v);
  for (const auto& [k, v] : want_set)
    if (!ports.count(k)) d.add["gports"].emplace_back(k, v);
}
}  // namespace

LayoutDiff patch_diff(const Layout& have, const topology::RulesetModel& want, const std::vector<IpAddr>& touched,
                      const std::vector<topology::AllowKey>& touched_keys) {
  LayoutDiff d;
  // An address touched twice in one batch (gone, then reused) must yield one change, not two deletes.
  std::vector<IpAddr> addrs(touched);
  std::sort(addrs.begin(), addrs.end());
  addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
  const std::set<topology::AllowKey> keys(touched_keys.begin(), touched_keys.end());
  // Objects for ids that are new since `have` (a chain and its dispatch
  // element each): only the ids these changes refer to.
  std::set<std::uint32_t> refs;
  for (const auto& a : addrs) {
    const auto& ep = a.is_v4() ? want.ep4 : want.ep6;
    if (auto it = ep.find(a); it != ep.end()) refs.insert(it->second);
  }
  for (const auto& k : keys) {
    refs.insert(k.src);
    refs.insert(k.dst);
  }
  Layout fresh;
  for (auto id : refs)
    if (want.ids.count(id) && !have.id_objects.count(id)) add_id_objects(fresh, id);
  d.add_chains = fresh.chains;
  for (const auto& [k, v] : fresh.elements["srcchain"]) d.add["srcchain"].emplace_back(k, v);
  static const ElementMap kEmpty;
  auto elems = [&](const std::string& set) -> const ElementMap& {
    auto it = have.elements.find(set);
    return it == have.elements.end() ? kEmpty : it->second;
  };
  // One element: make `have` say `want_data` (nullopt: absent).
  auto reconcile = [&](const std::string& set, const Bytes& key, const std::optional<Bytes>& want_data) {
    const auto& h = elems(set);
    auto have_data = h.get(key);
    if (have_data && want_data && *have_data == *want_data) return;
    if (have_data) d.del[set].emplace_back(key, *have_data);
    if (want_data) d.add[set].emplace_back(key, *want_data);
  };
  for (const auto& a : addrs) {
    std::string v = a.is_v4() ? "4" : "6";
    const auto& ep = a.is_v4() ? want.ep4 : want.ep6;
    auto it = ep.find(a);
    auto key = addr(a);
    std::optional<std::uint32_t> id;
    if (it != ep.end()) id = it->second;
    reconcile("eps" + v, key, id ? std::optional<Bytes>(Bytes{}) : std::nullopt);
    reconcile("ids" + v, key, id ? std::optional<Bytes>(u32(*id)) : std::nullopt);
    reconcile("enforced" + v, key, id && want.enforced.count(*id) ? std::optional<Bytes>(Bytes{}) : std::nullopt);
    reconcile("monitored" + v, key, id && want.monitored.count(*id) ? std::optional<Bytes>(Bytes{}) : std::nullopt);
  }
  for (const auto& k : keys) {
    auto [set, key] = allow_element(want.cfg.mark_mask, k);
    reconcile(set, key, want.allow.count(k) ? std::optional<Bytes>(Bytes{}) : std::nullopt);
  }
  if (want.cfg.guard) guard_patch(d, elems("gsrc4"), elems("gsrc6"), elems("gports"), want, addrs);
  return d;
}

void apply_diff(Layout& l, const LayoutDiff& d) {
  for (const auto& name : d.del_sets) {
    l.sets.erase(name);
    l.elements.erase(name);
    std::erase(l.set_order, name);
  }
  for (const auto& s : d.add_sets)
    if (!l.sets.count(s.name)) add_set(l, s);
  for (const auto& name : d.del_chains) std::erase_if(l.chains, [&](const ChainSpec& c) { return c.name == name; });
  for (const auto& c : d.add_chains) {
    if (c.kind == ChainKind::src) l.id_objects.insert(c.id);
    if (std::none_of(l.chains.begin(), l.chains.end(), [&](const ChainSpec& x) { return x.name == c.name; }))
      l.chains.push_back(c);
  }
  for (const auto& name : d.flush_chains) l.damaged.erase(name);
  for (const auto& [set, es] : d.del)
    for (const auto& [k, v] : es) l.elements[set].erase(k);
  for (const auto& [set, es] : d.add)
    for (const auto& [k, v] : es) l.elements[set].put(k, v);
}

std::size_t LayoutDiff::element_changes() const {
  std::size_t n = 0;
  for (const auto& [k, v] : del) n += v.size();
  for (const auto& [k, v] : add) n += v.size();
  return n;
}

std::size_t LayoutDiff::changes() const {
  return element_changes() + add_chains.size() + del_chains.size() + add_sets.size() + del_sets.size() +
         flush_chains.size();
}

bool LayoutDiff::empty() const {
  return add_sets.empty() && del_sets.empty() && add_chains.empty() && del_chains.empty() && flush_chains.empty() &&
         element_changes() == 0;
}

namespace {
// The elements of `a` that `b` lacks or holds with other data. Compared in place: a full compile at a
// million edges copies only what changed.
void changed_elements(const ElementMap& a, const ElementMap& b, const std::string& set,
                      std::map<std::string, std::vector<std::pair<Bytes, Bytes>>>& out) {
  auto same = [](ByteView x, ByteView y) { return std::equal(x.begin(), x.end(), y.begin(), y.end()); };
  for (auto it = a.begin(); it != a.end(); ++it) {
    auto o = b.find(it.key());
    if (o == b.end() || !same(o.data(), it.data())) out[set].push_back(*it);
  }
}
}  // namespace

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
    if (spec.interval && have.sets.count(name) && hv != wv) {
      // An interval may only change whole: the kernel refuses a new range
      // inside one that still stands, so replace every element at once.
      for (const auto& [k, v] : hv) d.del[name].emplace_back(k, v);
      for (const auto& [k, v] : wv) d.add[name].emplace_back(k, v);
      continue;
    }
    if (have.sets.count(name)) changed_elements(hv, wv, name, d.del);
    changed_elements(wv, hv, name, d.add);
  }
  return d;
}

}  // namespace topowall::nft
