#include "conntrack/ct_decode.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
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

}  // namespace

std::optional<FlowTuple> decode_ct_message(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return std::nullopt;
  if ((nlh->nlmsg_type & 0xff) != IPCTNL_MSG_CT_NEW) return std::nullopt;
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
  // DNAT: the reply comes from the real server; name it, not the published address.
  // A reply of the other family cannot be this flow's server: a flow names two addresses of one family.
  if (auto reply = parse_tuple(tb[CTA_TUPLE_REPLY]); reply && reply->src.family == f.src.family && reply->src != orig->dst) {
    f.dst = reply->src;
    if (!is_icmp(f.proto)) f.dport = reply->sport;
  }
  return f;
}

}  // namespace topowall::conntrack
