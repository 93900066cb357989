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

#include "nft/rule_builder.hpp"

namespace topowall::nft {

using namespace detail;

namespace {

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

// Before the dispatch: what always passes, what is invalid, and a scratch another packet already took.
void check_prologue(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
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
}

void check_rules(const topology::RulesetConfig& cfg, const std::string& c, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  check_prologue(cfg, c, out);
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


// The guard's match of a packet's protocol. inet: `meta nfproto`, as nft itself encodes the dependency;
// bridge: `meta protocol` (the ethertype).
Rule& guard_proto(Rule& r, std::uint32_t fam, std::uint16_t ethertype) {
  if (fam == NFPROTO_INET) return family(r, ethertype == ETH_P_IP ? kV4 : kV6);
  std::uint16_t be = htons(ethertype);
  return r.meta(NFT_META_PROTOCOL, kR1).cmp_bytes(kR1, NFT_CMP_EQ, &be, 2);
}

// What the guard lets pass: ports that are no container's, a port's own addresses, neighbour discovery.
void guard_pass_rules(const topology::RulesetConfig& cfg, const std::string& c, std::uint32_t fam, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  auto not_veth = [&] {
    char veth[16] = "veth";
    Rule r(cfg.table, c, fam);
    push(r.meta(NFT_META_IIFKIND, kR1).cmp_bytes(kR1, NFT_CMP_NEQ, veth, 16).verdict(NF_ACCEPT));
  };
  auto own_address = [&] {  // its own address from its own port
    for (auto [type, f] : {std::pair{ETH_P_IP, &kV4}, std::pair{ETH_P_IPV6, &kV6}}) {
      Rule r(cfg.table, c, fam);
      guard_proto(r, fam, static_cast<std::uint16_t>(type)).meta(NFT_META_IIF, kR1);
      r.payload(NFT_PAYLOAD_NETWORK_HEADER, f->saddr_off, f->addr_len, kR9).lookup(kR1, std::string("gsrc") + f->v);
      push(r.verdict(NF_ACCEPT));
    }
  };
  // Both are accepts ahead of every drop, so their order changes no verdict, only the per-packet cost: the
  // first rule is the one most packets leave by. A bridge port is nearly always a container's veth sending
  // its own address (one rule instead of two); the inet hooks see a bridged packet with the bridge as its
  // input device, as they see the node's own traffic, so there the kind compare goes first.
  if (fam == NFPROTO_BRIDGE) {
    own_address();
    not_veth();
  } else {
    not_veth();
    own_address();
  }
  // Neighbour discovery and MLD from a link-local or the unspecified address (DAD); never router
  // advertisements or redirects: a container is no router.
  for (bool unspecified : {false, true}) {
    Rule r(cfg.table, c, fam);
    guard_proto(r, fam, ETH_P_IPV6).meta(NFT_META_L4PROTO, kR1).cmp8(kR1, NFT_CMP_EQ, IPPROTO_ICMPV6);
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
    guard_proto(own, fam, ETH_P_ARP).meta(NFT_META_IIF, kR1).payload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, kR9).lookup(kR1, "gsrc4");
    push(own.verdict(NF_ACCEPT));
    Rule probe(cfg.table, c, fam);  // address probes (RFC 5227) claim nothing
    guard_proto(probe, fam, ETH_P_ARP).payload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, kR1).cmp32(kR1, NFT_CMP_EQ, 0);
    push(probe.verdict(NF_ACCEPT));
  }
}

// The guard (anti-spoofing), the same in the inet table (routed container ports: the packet's iif is
// the host-side veth) and in the bridge table (bridged ports: only the bridge family sees the port; the
// inet hooks see the bridge). Only ports of kind veth are container ports; everything else passes.
void guard_rules(const topology::RulesetConfig& cfg, const std::string& c, std::uint32_t fam, std::vector<NftRulePtr>& out) {
  auto push = [&](Rule& r) { out.push_back(r.take()); };
  guard_pass_rules(cfg, c, fam, out);
  {  // A classified port sending anything else, or any port using a workload's address: spoofed.
    Rule r(cfg.table, c, fam);
    push(r.meta(NFT_META_IIF, kR1).lookup(kR1, "gports").verdict(NFT_GOTO, "alert_drop_spoof"));
  }
  for (auto [type, f, off] : {std::tuple{ETH_P_IP, &kV4, 12u}, std::tuple{ETH_P_IPV6, &kV6, 8u}, std::tuple{ETH_P_ARP, &kV4, 14u}}) {
    if (type == ETH_P_ARP && fam != NFPROTO_BRIDGE) continue;
    Rule r(cfg.table, c, fam);
    guard_proto(r, fam, static_cast<std::uint16_t>(type)).payload(NFT_PAYLOAD_NETWORK_HEADER, off, f->addr_len, kR1);
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
