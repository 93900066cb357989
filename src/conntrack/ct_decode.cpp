#include "conntrack/ct_decode.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstring>

namespace topowall::conntrack {

namespace {

struct Tuple {
  IpAddr src, dst;
  int proto = -1;
  std::uint16_t sport = 0, dport = 0;
  std::uint8_t icmp_type = 0;
  bool have_ip = false;
};

int collect(const nlattr* attr, void* data) {
  auto** tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(attr);
  if (type < 0 || type > 32) return MNL_CB_OK;
  tb[type] = attr;
  return MNL_CB_OK;
}

void parse_ip(const nlattr* nest, Tuple& t) {
  const nlattr* tb[33] = {};
  mnl_attr_parse_nested(nest, collect, tb);
  auto put = [](IpAddr& a, const nlattr* at, int fam, std::size_t len) {
    if (!at || mnl_attr_get_payload_len(at) < len) return false;
    a.family = static_cast<std::uint8_t>(fam);
    std::memcpy(a.bytes.data(), mnl_attr_get_payload(at), len);
    return true;
  };
  if (tb[CTA_IP_V4_SRC])
    t.have_ip = put(t.src, tb[CTA_IP_V4_SRC], AF_INET, 4) && put(t.dst, tb[CTA_IP_V4_DST], AF_INET, 4);
  else if (tb[CTA_IP_V6_SRC])
    t.have_ip = put(t.src, tb[CTA_IP_V6_SRC], AF_INET6, 16) && put(t.dst, tb[CTA_IP_V6_DST], AF_INET6, 16);
}

// The attribute if it holds at least `n` bytes: mnl_attr_get_u8/u16 read without looking, so a shorter
// one last in the datagram was read past its end (a crash at a page boundary; see the fuzz corpus).
const nlattr* sized(const nlattr* a, std::size_t n) { return a && mnl_attr_get_payload_len(a) >= n ? a : nullptr; }

void parse_proto(const nlattr* nest, Tuple& t) {
  const nlattr* tb[33] = {};
  mnl_attr_parse_nested(nest, collect, tb);
  if (auto* a = sized(tb[CTA_PROTO_NUM], 1)) t.proto = mnl_attr_get_u8(a);
  if (auto* a = sized(tb[CTA_PROTO_SRC_PORT], 2)) t.sport = ntohs(mnl_attr_get_u16(a));
  if (auto* a = sized(tb[CTA_PROTO_DST_PORT], 2)) t.dport = ntohs(mnl_attr_get_u16(a));
  if (auto* a = sized(tb[CTA_PROTO_ICMP_TYPE], 1)) t.icmp_type = mnl_attr_get_u8(a);
  if (auto* a = sized(tb[CTA_PROTO_ICMPV6_TYPE], 1)) t.icmp_type = mnl_attr_get_u8(a);
}

std::optional<Tuple> parse_tuple(const nlattr* nest) {
  if (!nest) return std::nullopt;
  const nlattr* tb[33] = {};
  if (mnl_attr_parse_nested(nest, collect, tb) < 0) return std::nullopt;
  Tuple t;
  if (tb[CTA_TUPLE_IP]) parse_ip(tb[CTA_TUPLE_IP], t);
  if (tb[CTA_TUPLE_PROTO]) parse_proto(tb[CTA_TUPLE_PROTO], t);
  if (!t.have_ip || t.proto < 0) return std::nullopt;
  return t;
}

int parse_tcp_state(const nlattr* protoinfo) {
  const nlattr* tb[33] = {};
  if (!protoinfo || mnl_attr_parse_nested(protoinfo, collect, tb) < 0 || !tb[CTA_PROTOINFO_TCP]) return -1;
  const nlattr* tcp[33] = {};
  if (mnl_attr_parse_nested(tb[CTA_PROTOINFO_TCP], collect, tcp) < 0) return -1;
  auto* st = sized(tcp[CTA_PROTOINFO_TCP_STATE], 1);
  return st ? mnl_attr_get_u8(st) : -1;
}

CtFacts facts_of(const nlmsghdr* nlh, const nlattr* const* tb) {
  CtFacts f;
  // Events: NEW carries NLM_F_CREATE, an update none, a destroy is a DELETE; a dump answer is MULTI.
  if ((nlh->nlmsg_type & 0xff) == IPCTNL_MSG_CT_DELETE)
    f.kind = CtFacts::Kind::destroyed;
  else if (nlh->nlmsg_flags & NLM_F_MULTI)
    f.kind = CtFacts::Kind::dumped;
  else if (nlh->nlmsg_flags & NLM_F_CREATE)
    f.kind = CtFacts::Kind::created;
  else
    f.kind = CtFacts::Kind::updated;
  if (auto* a = sized(tb[CTA_STATUS], 4)) {
    const auto status = ntohl(mnl_attr_get_u32(a));
    f.seen_reply = status & IPS_SEEN_REPLY;
    f.assured = status & IPS_ASSURED;
  }
  f.tcp_state = parse_tcp_state(tb[CTA_PROTOINFO]);
  return f;
}

}  // namespace

FlowPhase flow_phase(Proto proto, const CtFacts& f) {
  using K = CtFacts::Kind;
  if (proto == Proto::tcp || proto == Proto::sctp) {
    const bool established = proto == Proto::tcp && f.tcp_state == TCP_CONNTRACK_ESTABLISHED && f.seen_reply;
    switch (f.kind) {
      case K::destroyed:
        return f.assured ? FlowPhase::progress : f.seen_reply ? FlowPhase::refused : FlowPhase::unanswered;
      case K::dumped: return f.assured || established ? FlowPhase::answered : FlowPhase::attempt;
      case K::created: return established ? FlowPhase::answered : FlowPhase::attempt;
      case K::updated:
        // TCP: the one update that reaches ESTABLISHED (later ones say FIN_WAIT, TIME_WAIT ...).
        // SCTP carries no state here: its update that sets ASSURED is the answer.
        if (proto == Proto::tcp) return established ? FlowPhase::answered : FlowPhase::progress;
        return f.assured ? FlowPhase::answered : FlowPhase::progress;
    }
  }
  switch (f.kind) {
    case K::destroyed: return f.seen_reply ? FlowPhase::progress : FlowPhase::unanswered;
    case K::dumped:
    case K::created: return f.seen_reply ? FlowPhase::answered : FlowPhase::attempt;
    case K::updated:
      // The reply sets SEEN_REPLY on its own event; ASSURED comes on a later packet.
      return f.seen_reply && !f.assured ? FlowPhase::answered : FlowPhase::progress;
  }
  return FlowPhase::progress;
}

std::optional<FlowTuple> decode_ct_message(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return std::nullopt;
  const auto type = nlh->nlmsg_type & 0xff;
  if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return std::nullopt;
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return std::nullopt;
  const nlattr* tb[33] = {};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, tb) < 0) return std::nullopt;
  auto orig = parse_tuple(tb[CTA_TUPLE_ORIG]);
  if (!orig) return std::nullopt;
  auto proto = proto_from_number(orig->proto);
  if (!proto) return std::nullopt;
  FlowTuple f;
  f.src = orig->src;
  f.dst = orig->dst;
  f.proto = *proto;
  f.sport = orig->sport;
  f.dport = orig->dport;
  f.icmp_type = orig->icmp_type;
  f.phase = flow_phase(f.proto, facts_of(nlh, tb));
  // DNAT: the reply comes from the real server; name it, not the published address.
  // A reply of the other family cannot be this flow's server: a flow names two addresses of one family.
  if (auto reply = parse_tuple(tb[CTA_TUPLE_REPLY]); reply && reply->src.family == f.src.family && reply->src != orig->dst) {
    f.dst = reply->src;
    if (!is_icmp(f.proto)) f.dport = reply->sport;
  }
  return f;
}

}  // namespace topowall::conntrack
