#include "topowall/topology/ruleset.hpp"

#include <fmt/format.h>

#include <sys/socket.h>

#include <algorithm>

#include "topowall/topology/identity.hpp"

namespace topowall::topology {

namespace {

__extension__ typedef unsigned __int128 u128;

u128 to_num(const IpAddr& a) {
  u128 v = 0;
  for (std::size_t i = 0; i < a.size(); ++i) v = (v << 8) | a.bytes[i];
  return v;
}

IpAddr from_num(int family, u128 v) {
  IpAddr a;
  a.family = static_cast<std::uint8_t>(family);
  for (std::size_t i = a.size(); i-- > 0;) {
    a.bytes[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}

struct Range {
  u128 lo, hi;
  std::uint32_t id;
};

// Paint [lo, hi] with id over a sorted, disjoint cover.
void overlay(std::vector<Range>& cover, Range r) {
  std::vector<Range> out;
  out.reserve(cover.size() + 2);
  for (const auto& c : cover) {
    if (c.hi < r.lo || c.lo > r.hi) {
      out.push_back(c);
      continue;
    }
    if (c.lo < r.lo) out.push_back({c.lo, r.lo - 1, c.id});
    if (c.hi > r.hi) out.push_back({r.hi + 1, c.hi, c.id});
  }
  out.push_back(r);
  std::sort(out.begin(), out.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  cover = std::move(out);
}

bool is_port_proto(Proto p) { return p == Proto::tcp || p == Proto::udp || p == Proto::sctp; }

// The shared id of workloads beyond the mark bits: judged under the global mode.
void admit_overflow(RulesetModel& m, const ModeTable& modes) {
  m.names[kOverflowId] = "overflow";
  m.ids.insert(kOverflowId);
  m.enforced.erase(kOverflowId);
  m.monitored.erase(kOverflowId);
  if (modes.global == Mode::enforce) m.enforced.insert(kOverflowId);
  if (modes.global == Mode::monitor) m.monitored.insert(kOverflowId);
}

// The port an address may be sent from: the one its owning (local) endpoint has it behind.
void set_port(RulesetModel& m, const EndpointTable& eps, const IpAddr& a) {
  auto& ports = a.is_v4() ? m.port4 : m.port6;
  ports.erase(a);
  const auto* ep = eps.find(eps.owner_of(a));
  if (!ep) return;
  if (auto it = ep->info.ports.find(a); it != ep->info.ports.end() && it->second) ports[a] = it->second;
}

}  // namespace

std::uint32_t IdTable::id(const std::string& name) {
  if (name == kHost) return kHostId;
  if (name == kWorld) return kWorldId;
  idle_since_.erase(name);
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  std::uint32_t id = next_;
  if (!free_.empty()) {
    id = *free_.begin();
    free_.erase(free_.begin());
  } else {
    ++next_;
  }
  ids_.emplace(name, id);
  return id;
}

std::uint32_t IdTable::find(const std::string& name) const {
  if (name == kHost) return kHostId;
  if (name == kWorld) return kWorldId;
  auto it = ids_.find(name);
  return it == ids_.end() ? 0 : it->second;
}

void IdTable::restore(std::map<std::string, std::uint32_t> ids, std::uint32_t next) {
  ids_.clear();
  free_.clear();
  idle_since_.clear();
  next_ = kFirstWorkloadId;  // the saved `next` is not needed: every unused id below the highest is free
  (void)next;
  std::map<std::uint32_t, int> uses;
  for (const auto& [n, id] : ids) ++uses[id];
  for (auto& [n, id] : ids) {
    // Two names on one id would share permissions: neither keeps it, both get fresh ids.
    if (id < kFirstWorkloadId || id == UINT32_MAX || uses[id] > 1) continue;
    ids_.emplace(n, id);
    next_ = std::max(next_, id + 1);
  }
  for (std::uint32_t id = kFirstWorkloadId; id < next_ && free_.size() < (1u << 20); ++id)
    if (auto it = uses.find(id); it == uses.end() || it->second > 1) free_.insert(id);
}

std::vector<std::string> IdTable::collect(const std::set<std::string>& live, TimePoint now, Clock::duration hold,
                                          std::uint32_t capacity) {
  std::vector<std::string> changed;
  for (auto it = ids_.begin(); it != ids_.end();) {
    if (live.count(it->first)) {
      idle_since_.erase(it->first);
      ++it;
      continue;
    }
    auto [idle, fresh] = idle_since_.try_emplace(it->first, now);
    if (fresh || now - idle->second < hold) {
      ++it;
      continue;
    }
    changed.push_back(it->first);
    free_.insert(it->second);
    idle_since_.erase(idle);
    it = ids_.erase(it);
  }
  // A workload that overflowed moves into a freed id that fits: judged by its own edges again.
  for (auto& [name, id] : ids_) {
    if (id <= capacity || free_.empty() || *free_.begin() > capacity) continue;
    free_.insert(id);
    id = *free_.begin();
    free_.erase(free_.begin());
    changed.push_back(name);
  }
  return changed;
}

std::vector<Interval> disjoint_intervals(int family, std::vector<std::pair<Cidr, std::uint32_t>> nets,
                                         std::uint32_t fallback_id) {
  const int bits = family == AF_INET ? 32 : 128;
  const u128 max = bits == 128 ? ~u128(0) : (u128(1) << 32) - 1;
  std::vector<Range> cover{{0, max, fallback_id}};
  // Least specific first, so more specific prefixes paint over them.
  std::stable_sort(nets.begin(), nets.end(), [](const auto& a, const auto& b) { return a.first.prefix < b.first.prefix; });
  for (const auto& [cidr, id] : nets) {
    if (cidr.addr.family != family) continue;
    u128 lo = to_num(cidr.addr);
    int host_bits = bits - cidr.prefix;
    u128 span = host_bits >= 128 ? ~u128(0) : (u128(1) << host_bits) - 1;
    overlay(cover, {lo, lo + span, id});
  }
  std::vector<Interval> out;
  for (const auto& r : cover) {
    if (!out.empty() && out.back().id == r.id && to_num(out.back().last) + 1 == r.lo) {
      out.back().last = from_num(family, r.hi);
      continue;
    }
    out.push_back({from_num(family, r.lo), from_num(family, r.hi), r.id});
  }
  return out;
}

int mark_shift(std::uint32_t mask) { return mask ? __builtin_ctz(mask) : 0; }
std::uint32_t mark_capacity(std::uint32_t mask) { return mask >> mark_shift(mask); }
std::uint32_t mark_value(std::uint32_t mask, std::uint32_t id) { return (id << mark_shift(mask)) & mask; }
// The highest bit: above every id the conntrack-mark scratch holds whenever the mask does not start at bit 0,
// and the scratch is always handed back before the bit is set, so the two never meet in one entry.
std::uint32_t event_mark(std::uint32_t mask) { return mask ? 1u << (31 - __builtin_clz(mask)) : 0; }

bool needs_conntrack_events(const RulesetModel& m) {
  if (!m.unclassified_drop) return true;  // global learn, as compile() records it
  for (const auto* ep : {&m.ep4, &m.ep6})
    for (const auto& [a, id] : *ep)
      if (!m.enforced.count(id)) return true;  // learns (judge marks it) or monitored (alert_pass does)
  return false;
}

bool needs_conntrack_events(const RulesetModel& m, const std::vector<IpAddr>& touched) {
  if (!m.unclassified_drop) return true;
  for (const auto& a : touched) {
    const auto& ep = a.is_v4() ? m.ep4 : m.ep6;
    if (auto it = ep.find(a); it != ep.end() && !m.enforced.count(it->second)) return true;
  }
  return false;
}

namespace {

// Endpoints, external networks and the node's own addresses: who an address is.
void compile_addresses(const CompileInput& in, IdTable& ids, RulesetModel& m) {
  for (const auto& [addr, workload] : in.endpoints.address_map()) {
    auto id = ids.id(workload);
    m.names[id] = workload;
    (addr.is_v4() ? m.ep4 : m.ep6)[addr] = id;
    set_port(m, in.endpoints, addr);
  }
  std::vector<std::pair<Cidr, std::uint32_t>> nets;
  for (const auto& n : in.endpoints.external_networks()) {
    auto id = ids.id(n.name);
    m.names[id] = n.name;
    nets.emplace_back(n.cidr, id);
  }
  for (const auto& h : in.endpoints.host_addresses()) nets.emplace_back(Cidr{h, h.is_v4() ? 32 : 128}, kHostId);
  m.net4 = disjoint_intervals(AF_INET, nets, kWorldId);
  m.net6 = disjoint_intervals(AF_INET6, nets, kWorldId);
}

// Edges name ids, never allocate them: only names with addresses (endpoints, networks) get one, and
// keep it until IdTable::collect() releases it. An edge whose side has no id cannot match a packet.
void compile_edges(const CompileInput& in, IdTable& ids, RulesetModel& m) {
  in.graph.edges().for_each([&](const EdgeKey& k, const EdgeInfo& e) {
    if (e.state == EdgeState::denied) return;
    if (e.expires && *e.expires <= in.now) return;
    auto s = ids.find(k.src), d = ids.find(k.dst);
    if (!s || !d) return;
    m.names[s] = k.src;
    m.names[d] = k.dst;
    m.allow.insert({s, d, static_cast<std::uint8_t>(k.proto), k.port});
  });
}

// Every workload with an id gets a mode.
void compile_modes(const CompileInput& in, IdTable& ids, RulesetModel& m) {
  std::set<std::string> workloads;
  for (const auto& [w, unused] : in.endpoints.workloads()) workloads.insert(w);
  for (const auto& [w, rec] : in.graph.workloads())
    if (ids.find(w)) workloads.insert(w);
  for (const auto& w : workloads) {
    auto id = ids.id(w);
    switch (in.modes.of(w)) {
      case Mode::enforce: m.enforced.insert(id); break;
      case Mode::monitor: m.monitored.insert(id); break;
      case Mode::learn: break;
    }
  }
}

// An id beyond the mark bits cannot be carried: leave that workload's addresses unjudged (counted and
// logged by the agent) rather than alias it.
void drop_over_capacity(RulesetModel& m, const ModeTable& modes) {
  const auto cap = mark_capacity(m.cfg.mark_mask);
  for (auto it = m.names.begin(); it != m.names.end();) {
    if (it->first <= cap) {
      m.ids.insert(it->first);
      ++it;
      continue;
    }
    m.over_capacity.insert(it->second);
    auto bad = it->first;
    for (auto* ep : {&m.ep4, &m.ep6})
      for (auto& [a, id] : *ep)
        if (id == bad) id = kOverflowId;
    absl::erase_if(m.allow, [&](const AllowKey& k) { return k.src == bad || k.dst == bad; });
    m.enforced.erase(bad);
    m.monitored.erase(bad);
    it = m.names.erase(it);
  }
  if (!m.over_capacity.empty()) admit_overflow(m, modes);
}

}  // namespace

RulesetModel compile(const CompileInput& in, IdTable& ids, const RulesetConfig& cfg) {
  RulesetModel m;
  m.cfg = cfg;
  m.names[kHostId] = std::string(kHost);
  m.names[kWorldId] = std::string(kWorld);
  m.unclassified_drop = in.modes.global != Mode::learn;
  compile_addresses(in, ids, m);
  compile_edges(in, ids, m);
  compile_modes(in, ids, m);
  drop_over_capacity(m, in.modes);
  return m;
}

namespace {
bool edge_allows(const EdgeInfo& e, TimePoint now) {
  return e.state != EdgeState::denied && (!e.expires || *e.expires > now);
}

// Give a workload its id and its mode membership in the model.
std::uint32_t admit(RulesetModel& m, IdTable& ids, const ModeTable& modes, const std::string& name, bool workload) {
  auto id = ids.id(name);
  if (m.names.emplace(id, name).second && id <= mark_capacity(m.cfg.mark_mask)) m.ids.insert(id);
  if (workload) {
    m.enforced.erase(id);
    m.monitored.erase(id);
    switch (modes.of(name)) {
      case Mode::enforce: m.enforced.insert(id); break;
      case Mode::monitor: m.monitored.insert(id); break;
      case Mode::learn: break;
    }
  }
  return id;
}
}  // namespace

bool patchable(const CompileInput& in, const IdTable& ids, const std::vector<IpAddr>& addrs) {
  for (const auto& a : addrs)
    if (const auto& w = in.endpoints.workload_of(a); !w.empty() && !ids.find(w)) return false;
  return true;
}

void patch(RulesetModel& m, const CompileInput& in, IdTable& ids, const std::vector<IpAddr>& addrs,
           const std::vector<EdgeKey>& edges) {
  const auto cap = mark_capacity(m.cfg.mark_mask);
  m.unclassified_drop = in.modes.global != Mode::learn;
  for (const auto& a : addrs) {
    auto& ep = a.is_v4() ? m.ep4 : m.ep6;
    set_port(m, in.endpoints, a);
    const auto& w = in.endpoints.workload_of(a);
    if (w.empty()) {
      ep.erase(a);
      continue;
    }
    auto id = admit(m, ids, in.modes, w, true);
    if (id > cap) {
      m.over_capacity.insert(w);
      ep[a] = kOverflowId;
      admit_overflow(m, in.modes);
      continue;
    }
    ep[a] = id;
  }
  for (const auto& k : edges) {
    const auto e = in.graph.find(k);
    auto s = ids.find(k.src), d = ids.find(k.dst);
    if (!s || !d) continue;  // not in the kernel (see compile)
    if (!e || !edge_allows(*e, in.now)) {
      m.allow.erase({s, d, static_cast<std::uint8_t>(k.proto), k.port});
      continue;
    }
    auto is_workload = [&](const std::string& n) { return in.endpoints.is_workload(n) || in.graph.workloads().count(n); };
    admit(m, ids, in.modes, k.src, is_workload(k.src));
    admit(m, ids, in.modes, k.dst, is_workload(k.dst));
    if (s > cap || d > cap) continue;
    m.allow.insert({s, d, static_cast<std::uint8_t>(k.proto), k.port});
  }
}

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::accept: return "accept";
    case Verdict::alert_accept: return "alert-accept";
    case Verdict::alert_drop: return "alert-drop";
  }
  return "?";
}

Judgement judge_ids(const RulesetModel& m, std::uint32_t src, bool src_endpoint, std::uint32_t dst, bool dst_endpoint,
                    Proto proto, std::uint16_t port) {
  using Why = Judgement::Why;
  Judgement j;
  j.src = src;
  j.dst = dst;
  auto say = [&](Verdict v, Why why) {
    j.verdict = v;
    j.why = why;
    return j;
  };
  if (!src_endpoint && !dst_endpoint) return say(Verdict::accept, Why::not_ours);
  // Failsafe ports protect the node itself (the kernel: `fib daddr type local`), never a container.
  if (dst == kHostId && is_port_proto(proto) && m.cfg.failsafe.count({static_cast<std::uint8_t>(proto), port}))
    return say(Verdict::accept, Why::failsafe);
  if (m.allow.count({src, dst, static_cast<std::uint8_t>(proto), port})) return say(Verdict::accept, Why::edge);
  if ((src_endpoint && m.enforced.count(src)) || (dst_endpoint && m.enforced.count(dst)))
    return say(Verdict::alert_drop, Why::enforced);
  if ((src_endpoint && m.monitored.count(src)) || (dst_endpoint && m.monitored.count(dst)))
    return say(Verdict::alert_accept, Why::monitored);
  return say(Verdict::accept, Why::learning);
}

Side classify(const RulesetModel& m, const IpAddr& a) {
  const auto& ep = a.is_v4() ? m.ep4 : m.ep6;
  if (auto it = ep.find(a); it != ep.end()) return {it->second, true};
  auto n = to_num(a);
  for (const auto& i : a.is_v4() ? m.net4 : m.net6)
    if (to_num(i.first) <= n && n <= to_num(i.last)) return {i.id, false};
  return {kWorldId, false};
}

Judgement judge(const RulesetModel& m, const IpAddr& src, const IpAddr& dst, Proto proto, std::uint16_t port) {
  auto s = classify(m, src), d = classify(m, dst);
  return judge_ids(m, s.id, s.endpoint, d.id, d.endpoint, proto, port);
}

Verdict evaluate(const RulesetModel& m, const IpAddr& src, const IpAddr& dst, Proto proto, std::uint16_t port) {
  return judge(m, src, dst, proto, port).verdict;
}

GuardVerdict guard(const RulesetModel& m, std::uint32_t port, const IpAddr& src) {
  if (!port) return GuardVerdict::accept;  // not a container port (uplinks, the host itself)
  const auto& ports = src.is_v4() ? m.port4 : m.port6;
  if (auto it = ports.find(src); it != ports.end() && it->second == port) return GuardVerdict::accept;
  bool classified = false;
  for (const auto* p : {&m.port4, &m.port6})
    for (const auto& [a, ifi] : *p) classified = classified || ifi == port;
  if (classified || (src.is_v4() ? m.ep4 : m.ep6).count(src)) return GuardVerdict::spoofed;
  return m.unclassified_drop ? GuardVerdict::unclassified : GuardVerdict::accept;
}

}  // namespace topowall::topology
