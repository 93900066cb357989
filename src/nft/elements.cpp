#include "nft/elements.hpp"

#include <linux/netfilter/nf_tables.h>

#include <cstring>

namespace topowall::nft {

namespace {
// nft's datatype ids; a concatenation packs them 6 bits apart.
constexpr std::uint32_t kIpAddr = 7, kIp6Addr = 8, kInetProto = 12, kInetService = 13, kMark = 19;
constexpr std::uint32_t concat(std::initializer_list<std::uint32_t> ts) {
  std::uint32_t t = 0;
  for (auto x : ts) t = (t << 6) | x;
  return t;
}

Bytes addr_bytes(const IpAddr& a) { return Bytes(a.bytes.begin(), a.bytes.begin() + static_cast<long>(a.size())); }

void put_proto_port(Bytes& b, std::uint8_t proto, std::uint16_t port) {
  b.insert(b.end(), {proto, 0, 0, 0});
  if (proto == 1 || proto == 58)
    b.insert(b.end(), {static_cast<std::uint8_t>(port), 0, 0, 0});  // icmp type: one byte
  else
    b.insert(b.end(), {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port), 0, 0});
}
}  // namespace

const std::vector<SetSpec>& set_specs() {
  static const std::vector<SetSpec> specs = {
      {"ep4", 4, kIpAddr, 4, NFT_SET_MAP},
      {"ep6", 16, kIp6Addr, 4, NFT_SET_MAP},
      {"net4", 4, kIpAddr, 4, NFT_SET_MAP | NFT_SET_INTERVAL},
      {"net6", 16, kIp6Addr, 4, NFT_SET_MAP | NFT_SET_INTERVAL},
      {"allow", 16, concat({kMark, kMark, kInetProto, kInetService}), 0, 0},
      {"enforced", 4, kMark, 0, 0},
      {"monitored", 4, kMark, 0, 0},
      {"failsafe", 8, concat({kInetProto, kInetService}), 0, 0},
  };
  return specs;
}

Bytes id_bytes(std::uint32_t id) {
  Bytes b(4);
  std::memcpy(b.data(), &id, 4);  // host order, as the kernel stores map data
  return b;
}

Bytes allow_key(const topology::AllowKey& k) {
  Bytes b = id_bytes(k.src);
  auto d = id_bytes(k.dst);
  b.insert(b.end(), d.begin(), d.end());
  put_proto_port(b, k.proto, k.port);
  return b;
}

std::map<std::string, ElementMap> encode(const topology::RulesetModel& m) {
  std::map<std::string, ElementMap> out;
  for (const auto& s : set_specs()) out[s.name];
  for (const auto& [a, id] : m.ep4) out["ep4"][addr_bytes(a)] = id_bytes(id);
  for (const auto& [a, id] : m.ep6) out["ep6"][addr_bytes(a)] = id_bytes(id);
  // Contiguous cover: start keys alone delimit the ranges (the last is open-ended).
  for (const auto& i : m.net4) out["net4"][addr_bytes(i.first)] = id_bytes(i.id);
  for (const auto& i : m.net6) out["net6"][addr_bytes(i.first)] = id_bytes(i.id);
  for (const auto& k : m.allow) out["allow"][allow_key(k)] = {};
  for (auto id : m.enforced) out["enforced"][id_bytes(id)] = {};
  for (auto id : m.monitored) out["monitored"][id_bytes(id)] = {};
  for (const auto& f : m.cfg.failsafe) {
    Bytes b;
    put_proto_port(b, f.proto, f.port);
    out["failsafe"][b] = {};
  }
  return out;
}

std::size_t ElementDiff::size() const {
  std::size_t n = 0;
  for (const auto& [k, v] : del) n += v.size();
  for (const auto& [k, v] : add) n += v.size();
  return n;
}

ElementDiff diff(const std::map<std::string, ElementMap>& have, const std::map<std::string, ElementMap>& want) {
  ElementDiff d;
  static const ElementMap kEmpty;
  for (const auto& s : set_specs()) {
    auto h = have.find(s.name);
    auto w = want.find(s.name);
    const auto& hv = h == have.end() ? kEmpty : h->second;
    const auto& wv = w == want.end() ? kEmpty : w->second;
    for (const auto& [k, v] : hv) {
      auto it = wv.find(k);
      if (it == wv.end() || it->second != v) d.del[s.name].emplace_back(k, v);
    }
    for (const auto& [k, v] : wv) {
      auto it = hv.find(k);
      if (it == hv.end() || it->second != v) d.add[s.name].emplace_back(k, v);
    }
  }
  return d;
}

}  // namespace topowall::nft
