#include "nft/rules.hpp"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/rtnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include <fmt/format.h>

namespace topowall::nft {

namespace {

constexpr std::uint32_t kR1 = NFT_REG_1;  // 16 bytes: addresses, and the first key slot
constexpr std::uint32_t kR9 = NFT_REG32_01;
constexpr std::uint32_t kR10 = NFT_REG32_02;
constexpr std::uint32_t kR11 = NFT_REG32_03;

// A rule under construction. An allocation that fails marks it failed: take() then gives null, and
// build_rules reports it.
class Rule {
 public:
  Rule(const std::string& table, const std::string& chain, std::uint32_t family = NFPROTO_INET) : r_(nftnl_rule_alloc()) {
    if (!r_) return;
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(r_.get(), NFTNL_RULE_FAMILY, family);
  }
  // meta and ct: a key, loaded into or stored from a register.
  Rule& keyed(const char* name, std::uint16_t key_attr, std::uint32_t key, std::uint16_t reg_attr, std::uint32_t reg) {
    return add(name, [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, key_attr, key);
      nftnl_expr_set_u32(e, reg_attr, reg);
    });
  }
  Rule& meta(std::uint32_t key, std::uint32_t dreg) { return keyed("meta", NFTNL_EXPR_META_KEY, key, NFTNL_EXPR_META_DREG, dreg); }
  Rule& meta_set(std::uint32_t key, std::uint32_t sreg) {
    return keyed("meta", NFTNL_EXPR_META_KEY, key, NFTNL_EXPR_META_SREG, sreg);
  }
  Rule& cmp_bytes(std::uint32_t sreg, std::uint32_t op, const void* v, std::uint32_t len) {
    return add("cmp", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
      nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, v, len);
    });
  }
  Rule& cmp8(std::uint32_t sreg, std::uint32_t op, std::uint8_t v) { return cmp_bytes(sreg, op, &v, 1); }
  Rule& cmp32(std::uint32_t sreg, std::uint32_t op, std::uint32_t v) { return cmp_bytes(sreg, op, &v, 4); }
  Rule& range8(std::uint32_t sreg, std::uint8_t from, std::uint8_t to) {
    return add("range", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, sreg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, NFT_RANGE_EQ);
      nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, &from, 1);
      nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, &to, 1);
    });
  }
  Rule& payload(std::uint32_t base, std::uint32_t off, std::uint32_t len, std::uint32_t dreg) {
    return add("payload", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    });
  }
  // reg = reg & mask ^ xor_, over `len` bytes.
  Rule& bitwise_bytes(std::uint32_t reg, const void* mask, const void* xor_, std::uint32_t len) {
    return add("bitwise", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor_, len);
    });
  }
  Rule& bitwise(std::uint32_t reg, std::uint32_t mask, std::uint32_t xor_) { return bitwise_bytes(reg, &mask, &xor_, 4); }
  Rule& lookup(std::uint32_t sreg, const std::string& set, bool inverted = false, bool vmap = false) {
    return add("lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
      if (vmap) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
      if (inverted) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    });
  }
  // A data map: the value found replaces the key in the register.
  Rule& map(std::uint32_t reg, const std::string& set) {
    return add("lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, reg);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, reg);
    });
  }
  Rule& ct_mark(std::uint32_t dreg) { return keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_MARK, NFTNL_EXPR_CT_DREG, dreg); }
  Rule& ct_mark_set(std::uint32_t sreg) { return keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_MARK, NFTNL_EXPR_CT_SREG, sreg); }
  Rule& imm32(std::uint32_t reg, std::uint32_t v) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
      nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &v, 4);
    });
  }
  // ct mark set 0: the scratch register is handed back clean.
  Rule& ct_mark_clear() { return imm32(kR1, 0).ct_mark_set(kR1); }
  // ct mark set ct mark | bit (another component's bits, if any, stay).
  Rule& ct_mark_or(std::uint32_t bit) { return ct_mark(kR1).bitwise(kR1, ~bit, bit).ct_mark_set(kR1); }
  Rule& ct_state_any(std::uint32_t bits) {
    keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_STATE, NFTNL_EXPR_CT_DREG, kR1).bitwise(kR1, bits, 0);
    return cmp32(kR1, NFT_CMP_NEQ, 0);
  }
  // meta mark set meta mark & mask | value
  Rule& set_mark(std::uint32_t keep, std::uint32_t value) {
    meta(NFT_META_MARK, kR1).bitwise(kR1, keep, value);
    return meta_set(NFT_META_MARK, kR1);
  }
  Rule& verdict(int code, const char* chain = nullptr) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code));
      if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
    });
  }
  Rule& limit(std::uint64_t rate, std::uint32_t burst) {
    return add("limit", [&](nftnl_expr* e) {
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, burst);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    });
  }
  Rule& log(std::uint16_t group, const char* prefix) {
    return add("log", [&](nftnl_expr* e) {
      nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
      nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD, 1);  // deliver each alert at once
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);   // headers are enough
    });
  }
  Rule& counter() {
    return add("counter", [](nftnl_expr*) {});
  }
  // fib daddr type local: the packet is for this node itself.
  Rule& to_local() {
    add("fib", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, kR1);
    });
    return cmp32(kR1, NFT_CMP_EQ, RTN_LOCAL);
  }
  // The finished rule; null when an allocation failed.
  NftRulePtr take() {
    if (failed_) r_.reset();
    return std::move(r_);
  }

 private:
  // One expression: allocated, filled by `fill`, appended (the rule owns it from then on).
  template <typename Fill>
  Rule& add(const char* name, Fill&& fill) {
    NftExprPtr e(r_ ? nftnl_expr_alloc(name) : nullptr);
    if (!e) {
      failed_ = true;
      return *this;
    }
    fill(e.get());
    nftnl_rule_add_expr(r_.get(), e.release());
    return *this;
  }
  NftRulePtr r_;
  bool failed_ = false;
};

struct Family {
  std::uint8_t nfproto;
  std::uint32_t saddr_off, daddr_off, addr_len;
  const char* v;
};
const Family kV4{NFPROTO_IPV4, 12, 16, 4, "4"};
const Family kV6{NFPROTO_IPV6, 8, 24, 16, "6"};

Rule& family(Rule& r, const Family& f) { return r.meta(NFT_META_NFPROTO, kR1).cmp8(kR1, NFT_CMP_EQ, f.nfproto); }
Rule& addr(Rule& r, const Family& f, bool src) {
  return r.payload(NFT_PAYLOAD_NETWORK_HEADER, src ? f.saddr_off : f.daddr_off, f.addr_len, kR1);
}

void allow_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out);

// Neither end is a workload: not ours to judge.
void not_ours_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
  for (const auto* f : {&kV4, &kV6}) {
    Rule r(cfg.table, c);
    family(r, *f);
    addr(r, *f, true).lookup(kR1, std::string("eps") + f->v, true);
    addr(r, *f, false).lookup(kR1, std::string("eps") + f->v, true);
    out.push_back(r.verdict(NF_ACCEPT).take());
  }
}

void check_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  {  // IPv6 neighbour discovery and MLD are untracked; they must always pass
    Rule r(cfg.table, c);
    family(r, kV6).meta(NFT_META_L4PROTO, kR1).cmp8(kR1, NFT_CMP_EQ, IPPROTO_ICMPV6);
    r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kR1).range8(kR1, 130, 143);
    push(r.verdict(NF_ACCEPT));
  }
  {  // invalid: dropped if ours (the chain lets other traffic's pass)
    Rule r(cfg.table, c);
    push(r.ct_state_any(NF_CT_STATE_INVALID_BIT).verdict(NFT_GOTO, "invalid"));
  }
  // The conntrack mark of a new connection is our scratch register (zero
  // unless another component set it): the source's id goes through it to
  // `src_<id>`, which writes it into our packet-mark bits; then it holds the
  // destination's id for the one lookup in `allow`. Jump verdicts are keyed by
  // ids only, so adding an endpoint never makes the kernel re-validate the table.
  // Our events bit (topology::event_mark) is no other component's: a later packet of a connection still
  // being created (a retransmitted SYN) finds it and is judged afresh, from a clean scratch.
  const std::uint32_t events = topology::event_mark(cfg.mark_mask);
  {  // the scratch is taken: judge without dispatch (counted in `taken`)
    Rule r(cfg.table, c);
    push(r.ct_mark(kR1).bitwise(kR1, ~events, 0).cmp32(kR1, NFT_CMP_NEQ, 0).verdict(NFT_GOTO, "taken"));
  }
  {
    Rule r(cfg.table, c);
    push(r.ct_mark_clear());
  }
  auto ids_into_scratch = [&](bool src) {  // an endpoint's id
    for (const auto* f : {&kV4, &kV6}) {
      Rule r(cfg.table, c);
      family(r, *f);
      addr(r, *f, src).map(kR1, std::string("ids") + f->v);
      push(r.ct_mark_set(kR1));
    }
  };
  auto net_into_scratch = [&](bool src) {  // otherwise its network's (world covers the rest)
    for (const auto* f : {&kV4, &kV6}) {
      Rule r(cfg.table, c);
      r.ct_mark(kR1).cmp32(kR1, NFT_CMP_EQ, 0);
      family(r, *f);
      addr(r, *f, src).map(kR1, std::string("net") + f->v);
      push(r.ct_mark_set(kR1));
    }
  };
  // The source's id first: a hit also says the flow is ours, so the common
  // case (workload to workload) needs no separate endpoint-set lookup.
  ids_into_scratch(true);
  for (const auto* f : {&kV4, &kV6}) {  // the source is not a workload, nor the destination: not ours
    Rule r(cfg.table, c);
    r.ct_mark(kR1).cmp32(kR1, NFT_CMP_EQ, 0);
    family(r, *f);
    addr(r, *f, false).lookup(kR1, std::string("eps") + f->v, true);
    push(r.verdict(NF_ACCEPT));
  }
  net_into_scratch(true);
  {
    Rule r(cfg.table, c);
    push(r.ct_mark(kR1).lookup(kR1, "srcchain", false, true));
  }
  ids_into_scratch(false);
  net_into_scratch(false);
  allow_rules(cfg, c, out);
}

// Source mark . destination id . proto . port (or . icmp type): a hit hands
// both marks back clean and accepts; a miss goes to `judge`.
void allow_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  const std::uint32_t mask = cfg.mark_mask, keep = ~cfg.mark_mask;
  auto ids = [&](Rule& r) -> Rule& { return r.meta(NFT_META_MARK, kR1).bitwise(kR1, mask, 0).ct_mark(kR9); };
  {
    Rule r(cfg.table, c);
    ids(r).meta(NFT_META_L4PROTO, kR10).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kR11).lookup(kR1, "allow");
    push(r.set_mark(keep, 0).ct_mark_clear().verdict(NFT_GOTO, "allowed"));
  }
  for (auto [proto, set] : {std::pair<int, const char*>{IPPROTO_ICMP, "allow_icmp"}, std::pair<int, const char*>{IPPROTO_ICMPV6, "allow_icmp6"}}) {
    Rule r(cfg.table, c);
    r.meta(NFT_META_L4PROTO, kR1).cmp8(kR1, NFT_CMP_EQ, static_cast<std::uint8_t>(proto));
    ids(r).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kR10).lookup(kR1, set);
    push(r.set_mark(keep, 0).ct_mark_clear().verdict(NFT_GOTO, "allowed"));
  }
  Rule clear(cfg.table, c);
  push(clear.ct_mark_clear().verdict(NFT_GOTO, "judge"));
}

// An edge allowed the connection. The agent needs its events only while it learns, as the learner decides
// it: no end enforced or monitored. Those keep the events bit; the rest are accepted unmarked, and the event
// socket's filter drops their events in the kernel.
void allowed_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
  for (const char* set : {"enforced", "monitored"})
    for (const auto* f : {&kV4, &kV6})
      for (bool src : {true, false}) {
        Rule r(cfg.table, c);
        family(r, *f);
        addr(r, *f, src).lookup(kR1, std::string(set) + f->v);
        out.push_back(r.verdict(NF_ACCEPT).take());
      }
  Rule learning(cfg.table, c);
  out.push_back(learning.imm32(kR1, topology::event_mark(cfg.mark_mask)).ct_mark_set(kR1).verdict(NF_ACCEPT).take());
}

// No edge matched: failsafe ports pass; clear our mark bits; the stricter
// workload end decides. `taken` judges the same way once it has let other
// traffic pass and counted, alerting with the reason in the log prefix.
void judge_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out,
                 const std::string& suffix = "") {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  if (!suffix.empty()) {
    not_ours_rules(cfg, c, out);
    Rule counted(cfg.table, c);
    push(counted.counter());
  }
  // Our mark bits are cleared before any verdict; failsafe ports protect the node itself only (never
  // ssh between containers or to the world).
  Rule clear(cfg.table, c);
  push(clear.set_mark(~cfg.mark_mask, 0));
  {
    Rule r(cfg.table, c);
    r.to_local().meta(NFT_META_L4PROTO, kR1).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kR9).lookup(kR1, "failsafe");
    push(r.verdict(NF_ACCEPT));
  }
  for (auto [set, target] : {std::pair{"enforced", "alert_drop"}, std::pair{"monitored", "alert_pass"}})
    for (const auto* f : {&kV4, &kV6})
      for (bool src : {true, false}) {
        Rule r(cfg.table, c);
        family(r, *f);
        addr(r, *f, src).lookup(kR1, std::string(set) + f->v);
        push(r.verdict(NFT_GOTO, (target + suffix).c_str()));
      }
  // Neither end enforced nor monitored: the connection learns, and the learner needs its events.
  Rule learning(cfg.table, c);
  push(learning.ct_mark_or(topology::event_mark(cfg.mark_mask)));
}


// The guard (anti-spoofing), the same in the inet table (routed container ports: the packet's iif is
// the host-side veth) and in the bridge table (bridged ports: only the bridge family sees the port; the
// inet hooks see the bridge). Only ports of kind veth are container ports; everything else passes.
void guard_rules(const topology::RulesetConfig& cfg, const std::string& c, std::uint32_t fam, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  char veth[16] = "veth";
  // inet: `meta nfproto`, as nft itself encodes the dependency; bridge: `meta protocol` (the ethertype).
  auto proto = [&](Rule& r, std::uint16_t ethertype) -> Rule& {
    if (fam == NFPROTO_INET) return family(r, ethertype == ETH_P_IP ? kV4 : kV6);
    std::uint16_t be = htons(ethertype);
    return r.meta(NFT_META_PROTOCOL, kR1).cmp_bytes(kR1, NFT_CMP_EQ, &be, 2);
  };
  {
    Rule r(cfg.table, c, fam);
    push(r.meta(NFT_META_IIFKIND, kR1).cmp_bytes(kR1, NFT_CMP_NEQ, veth, 16).verdict(NF_ACCEPT));
  }
  // Its own address from its own port.
  for (auto [type, f] : {std::pair{ETH_P_IP, &kV4}, std::pair{ETH_P_IPV6, &kV6}}) {
    Rule r(cfg.table, c, fam);
    proto(r, static_cast<std::uint16_t>(type)).meta(NFT_META_IIF, kR1);
    r.payload(NFT_PAYLOAD_NETWORK_HEADER, f->saddr_off, f->addr_len, kR9).lookup(kR1, std::string("gsrc") + f->v);
    push(r.verdict(NF_ACCEPT));
  }
  // Neighbour discovery and MLD from a link-local or the unspecified address (DAD); never router
  // advertisements or redirects: a container is no router.
  for (bool unspecified : {false, true}) {
    Rule r(cfg.table, c, fam);
    proto(r, ETH_P_IPV6).meta(NFT_META_L4PROTO, kR1).cmp8(kR1, NFT_CMP_EQ, IPPROTO_ICMPV6);
    if (unspecified) {
      std::uint8_t zero[16] = {};
      r.payload(NFT_PAYLOAD_NETWORK_HEADER, kV6.saddr_off, 16, kR1).cmp_bytes(kR1, NFT_CMP_EQ, zero, 16);
    } else {
      // fe80::/10, encoded as nft encodes a prefix: the whole address, masked.
      std::uint8_t ll[16] = {0xfe, 0x80}, mask[16] = {0xff, 0xc0}, zero[16] = {};
      r.payload(NFT_PAYLOAD_NETWORK_HEADER, kV6.saddr_off, 16, kR1).bitwise_bytes(kR1, mask, zero, 16);
      r.cmp_bytes(kR1, NFT_CMP_EQ, ll, 16);
    }
    r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kR1).lookup(kR1, "gnd6");
    push(r.verdict(NF_ACCEPT));
  }
  if (fam == NFPROTO_BRIDGE) {  // ARP: the sender address is checked like a source address
    Rule own(cfg.table, c, fam);
    proto(own, ETH_P_ARP).meta(NFT_META_IIF, kR1).payload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, kR9).lookup(kR1, "gsrc4");
    push(own.verdict(NF_ACCEPT));
    Rule probe(cfg.table, c, fam);  // address probes (RFC 5227) claim nothing
    proto(probe, ETH_P_ARP).payload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, kR1).cmp32(kR1, NFT_CMP_EQ, 0);
    push(probe.verdict(NF_ACCEPT));
  }
  {  // A classified port sending anything else, or any port using a workload's address: spoofed.
    Rule r(cfg.table, c, fam);
    push(r.meta(NFT_META_IIF, kR1).lookup(kR1, "gports").verdict(NFT_GOTO, "alert_drop_spoof"));
  }
  for (auto [type, f, off] : {std::tuple{ETH_P_IP, &kV4, 12u}, std::tuple{ETH_P_IPV6, &kV6, 8u}, std::tuple{ETH_P_ARP, &kV4, 14u}}) {
    if (type == ETH_P_ARP && fam != NFPROTO_BRIDGE) continue;
    Rule r(cfg.table, c, fam);
    proto(r, static_cast<std::uint16_t>(type)).payload(NFT_PAYLOAD_NETWORK_HEADER, off, f->addr_len, kR1);
    push(r.lookup(kR1, std::string("eps") + f->v).verdict(NFT_GOTO, "alert_drop_spoof"));
  }
  // An unclassified container port: refused unless the node learns (the map holds the verdict).
  Rule u(cfg.table, c, fam);
  push(u.meta(NFT_META_IIFKIND, kR1).lookup(kR1, "gunclassified", false, true));
}

}  // namespace

int hook_of(ChainKind kind) {
  // NF_INET_PRE_ROUTING and NF_BR_PRE_ROUTING are both 0.
  if (kind == ChainKind::output) return NF_INET_LOCAL_OUT;
  return kind == ChainKind::prerouting || kind == ChainKind::guard ? NF_INET_PRE_ROUTING : -1;
}

Result<std::vector<NftRulePtr>> build_rules(const topology::RulesetConfig& cfg, const ChainSpec& spec,
                                           std::uint32_t fam) {
  std::vector<NftRulePtr> out;
  const auto& t = cfg.table;
  const auto& c = spec.name;
  const std::uint32_t mask = cfg.mark_mask, keep = ~cfg.mark_mask;
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  switch (spec.kind) {
    case ChainKind::check: check_rules(cfg, c, out); break;
    case ChainKind::judge: judge_rules(cfg, c, out); break;
    case ChainKind::allowed: allowed_rules(cfg, c, out); break;
    case ChainKind::taken: judge_rules(cfg, c, out, "_ctmark"); break;
    case ChainKind::invalid: {
      not_ours_rules(cfg, c, out);
      Rule r(t, c);
      push(r.verdict(NF_DROP));
      break;
    }
    case ChainKind::guard: guard_rules(cfg, c, fam, out); break;
    case ChainKind::src: {
      Rule r(t, c);
      push(r.set_mark(keep, topology::mark_value(mask, spec.id)).ct_mark_clear());
      break;
    }
    case ChainKind::alert_drop:
    case ChainKind::alert_pass: {
      bool drop = spec.kind == ChainKind::alert_drop;
      // Over the rate the log rule stops; the verdict rule still applies.
      Rule l(t, c, fam);
      auto prefix = std::string(drop ? "topowall:drop" : "topowall:pass") + (spec.reason.empty() ? "" : ":" + spec.reason);
      if (!drop) {  // a monitored flow outside the graph: its answer makes a pending edge (the learner, from events)
        Rule ev(t, c, fam);
        push(ev.ct_mark_or(topology::event_mark(mask)));
      }
      push(l.limit(cfg.alert_rate, cfg.alert_burst).log(cfg.nflog_group, prefix.c_str()));
      Rule v(t, c, fam);
      push(v.counter().verdict(drop ? NF_DROP : NF_ACCEPT));
      break;
    }
    case ChainKind::prerouting:
    case ChainKind::output: {
      // Most packets belong to established connections: they leave here,
      // without a jump.
      Rule est(t, c);
      push(est.ct_state_any(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)).verdict(NF_ACCEPT));
      Rule r(t, c);
      push(r.verdict(NFT_JUMP, "check"));
      break;
    }
  }
  for (const auto& r : out)
    if (!r) return alloc_error("the rules of nftables chain " + c);
  return out;
}

}  // namespace topowall::nft
