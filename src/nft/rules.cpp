#include "nft/rules.hpp"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include <cstring>

namespace topowall::nft {

void RuleDel::operator()(nftnl_rule* r) const { nftnl_rule_free(r); }

namespace {

// Scratch registers: an address (up to 16 bytes) is loaded at kScratch, the
// concatenated key src id . dst id . proto . port is assembled at kKey.
constexpr std::uint32_t kKey = NFT_REG32_00;
constexpr std::uint32_t kScratch = NFT_REG32_04;

class Rule {
 public:
  Rule(const std::string& table, const std::string& chain) : r_(nftnl_rule_alloc()) {
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(r_.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  }
  Rule& meta(std::uint32_t key, std::uint32_t dreg) {
    auto* e = nftnl_expr_alloc("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    return add(e);
  }
  Rule& cmp(std::uint32_t sreg, std::uint32_t op, const void* data, std::uint32_t len) {
    auto* e = nftnl_expr_alloc("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    return add(e);
  }
  Rule& cmp8(std::uint32_t sreg, std::uint32_t op, std::uint8_t v) { return cmp(sreg, op, &v, 1); }
  Rule& payload(std::uint32_t base, std::uint32_t off, std::uint32_t len, std::uint32_t dreg) {
    auto* e = nftnl_expr_alloc("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    return add(e);
  }
  Rule& lookup(std::uint32_t sreg, const char* set, int dreg = -1, bool inverted = false) {
    auto* e = nftnl_expr_alloc("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
    if (dreg >= 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, static_cast<std::uint32_t>(dreg));
    if (inverted) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    return add(e);
  }
  Rule& ct_state_any(std::uint32_t bits) {
    auto* e = nftnl_expr_alloc("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, kKey);
    add(e);
    std::uint32_t zero = 0;
    auto* b = nftnl_expr_alloc("bitwise");
    nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_SREG, kKey);
    nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_DREG, kKey);
    nftnl_expr_set_u32(b, NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set(b, NFTNL_EXPR_BITWISE_MASK, &bits, 4);
    nftnl_expr_set(b, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
    add(b);
    return cmp(kKey, NFT_CMP_NEQ, &zero, 4);
  }
  Rule& verdict(int code, const char* chain = nullptr) {
    auto* e = nftnl_expr_alloc("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code));
    if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
    return add(e);
  }
  Rule& limit(std::uint64_t rate, std::uint32_t burst) {
    auto* e = nftnl_expr_alloc("limit");
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, burst);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    return add(e);
  }
  Rule& log(std::uint16_t group, const char* prefix) {
    auto* e = nftnl_expr_alloc("log");
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD, 1);  // deliver each alert at once
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);   // headers are enough
    return add(e);
  }
  Rule& counter() { return add(nftnl_expr_alloc("counter")); }
  RulePtr take() { return std::move(r_); }

 private:
  Rule& add(nftnl_expr* e) {
    nftnl_rule_add_expr(r_.get(), e);
    return *this;
  }
  RulePtr r_;
};

struct Family {
  std::uint8_t nfproto;
  std::uint32_t saddr_off, daddr_off, addr_len;
  std::uint8_t icmp;
  const char *ep, *net;
};
const Family kV4{NFPROTO_IPV4, 12, 16, 4, IPPROTO_ICMP, "ep4", "net4"};
const Family kV6{NFPROTO_IPV6, 8, 24, 16, IPPROTO_ICMPV6, "ep6", "net6"};

Rule& family(Rule& r, const Family& f) {
  r.meta(NFT_META_NFPROTO, kScratch);
  return r.cmp8(kScratch, NFT_CMP_EQ, f.nfproto);
}

// Load an address and map it to an id in `dst_reg`; `not_in_ep` first proves
// the address is no endpoint (so a network id never stands in for one).
void resolve(Rule& r, const Family& f, bool src, const char* map, std::uint32_t dst_reg, bool not_in_ep) {
  r.payload(NFT_PAYLOAD_NETWORK_HEADER, src ? f.saddr_off : f.daddr_off, f.addr_len, kScratch);
  if (not_in_ep) r.lookup(kScratch, f.ep, -1, true);
  r.lookup(kScratch, map, static_cast<int>(dst_reg));
}

}  // namespace

const std::vector<ChainSpec>& chain_specs() {
  static const std::vector<ChainSpec> specs = {
      {"check", -1}, {"alert_drop", -1}, {"alert_pass", -1}, {"forward", NF_INET_FORWARD}, {"input", NF_INET_LOCAL_IN}};
  return specs;
}

std::vector<std::pair<std::string, RulePtr>> build_rules(const topology::RulesetConfig& cfg) {
  std::vector<std::pair<std::string, RulePtr>> out;
  const auto& t = cfg.table;
  auto push = [&](const char* chain, Rule& r) { out.emplace_back(chain, r.take()); };

  {
    Rule r(t, "check");
    r.ct_state_any(NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)).verdict(NF_ACCEPT);
    push("check", r);
  }
  // Neither end is a workload of this node: not ours to judge.
  for (const auto* f : {&kV4, &kV6}) {
    Rule r(t, "check");
    family(r, *f);
    r.payload(NFT_PAYLOAD_NETWORK_HEADER, f->saddr_off, f->addr_len, kScratch).lookup(kScratch, f->ep, -1, true);
    r.payload(NFT_PAYLOAD_NETWORK_HEADER, f->daddr_off, f->addr_len, kScratch).lookup(kScratch, f->ep, -1, true);
    r.verdict(NF_ACCEPT);
    push("check", r);
  }
  {
    // IPv6 neighbour discovery and MLD (types 130-143) are untracked and must
    // always pass, or addresses stop resolving.
    Rule r(t, "check");
    family(r, kV6);
    r.meta(NFT_META_L4PROTO, kScratch).cmp8(kScratch, NFT_CMP_EQ, IPPROTO_ICMPV6);
    r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kScratch);
    r.cmp8(kScratch, NFT_CMP_GTE, 130).cmp8(kScratch, NFT_CMP_LTE, 143).verdict(NF_ACCEPT);
    push("check", r);
  }
  {
    Rule r(t, "check");
    r.meta(NFT_META_L4PROTO, kKey).payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kKey + 1);
    r.lookup(kKey, "failsafe").verdict(NF_ACCEPT);
    push("check", r);
  }
  {
    Rule r(t, "check");
    r.ct_state_any(NF_CT_STATE_INVALID_BIT).verdict(NF_DROP);
    push("check", r);
  }
  // The edge check: src id . dst id . proto . port in @allow.
  for (const auto* f : {&kV4, &kV6}) {
    struct Ends {
      bool src_ep, dst_ep;
    };
    for (auto ends : {Ends{true, true}, Ends{true, false}, Ends{false, true}}) {
      for (bool icmp : {false, true}) {
        Rule r(t, "check");
        family(r, *f);
        r.meta(NFT_META_L4PROTO, kScratch).cmp8(kScratch, icmp ? NFT_CMP_EQ : NFT_CMP_NEQ, f->icmp);
        resolve(r, *f, true, ends.src_ep ? f->ep : f->net, kKey, !ends.src_ep);
        resolve(r, *f, false, ends.dst_ep ? f->ep : f->net, kKey + 1, !ends.dst_ep);
        r.meta(NFT_META_L4PROTO, kKey + 2);
        if (icmp) r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kKey + 3);  // icmp type
        else r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kKey + 3);      // destination port
        r.lookup(kKey, "allow").verdict(NF_ACCEPT);
        push("check", r);
      }
    }
  }
  // Not an edge: the stricter workload end decides.
  for (const auto* set : {"enforced", "monitored"}) {
    for (const auto* f : {&kV4, &kV6}) {
      for (bool src : {true, false}) {
        Rule r(t, "check");
        family(r, *f);
        resolve(r, *f, src, f->ep, kKey, false);
        r.lookup(kKey, set).verdict(NFT_GOTO, std::string(set) == "enforced" ? "alert_drop" : "alert_pass");
        push("check", r);
      }
    }
  }
  for (auto [chain, prefix, verdict] : {std::tuple{"alert_drop", "topowall:drop", NF_DROP},
                                        std::tuple{"alert_pass", "topowall:pass", NF_ACCEPT}}) {
    // Over the rate the log rule stops; the verdict rule still applies.
    Rule l(t, chain);
    l.limit(cfg.alert_rate, cfg.alert_burst).log(cfg.nflog_group, prefix);
    push(chain, l);
    Rule v(t, chain);
    v.counter().verdict(verdict);
    push(chain, v);
  }
  for (const auto* base : {"forward", "input"}) {
    Rule r(t, base);
    r.verdict(NFT_JUMP, "check");
    push(base, r);
  }
  return out;
}

}  // namespace topowall::nft
