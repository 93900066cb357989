// Decoding of recorded kernel messages (captured from this kernel) and of
// messages built here for cases that are awkward to capture.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "common/netlink.hpp"
#include "conntrack/ct_decode.hpp"
#include "fakes.hpp"
#include "rtnl/addresses.hpp"

using namespace topowall;

namespace {
std::string data(const char* name) { return std::string(TOPOWALL_TEST_DATA) + "/" + name; }

// Build a ctnetlink NEW message: orig a->b, reply from `reply_src`.
std::vector<char> build_ct(int family, const IpAddr& a, const IpAddr& b, const IpAddr& reply_src, int proto,
                           std::uint16_t sport, std::uint16_t dport, std::uint16_t reply_sport, int icmp_type = -1,
                           int reply_family = 0) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = static_cast<std::uint8_t>(family);
  auto tuple = [&](int type, const IpAddr& s, const IpAddr& d, std::uint16_t sp, std::uint16_t dp) {
    auto* t = mnl_attr_nest_start(nlh, type);
    auto* ipn = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    bool v4 = (type == CTA_TUPLE_REPLY && reply_family ? reply_family : family) == AF_INET;
    mnl_attr_put(nlh, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, s.size(), s.bytes.data());
    mnl_attr_put(nlh, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, d.size(), d.bytes.data());
    mnl_attr_nest_end(nlh, ipn);
    auto* pn = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, static_cast<std::uint8_t>(proto));
    if (icmp_type >= 0) {
      mnl_attr_put_u8(nlh, v4 ? CTA_PROTO_ICMP_TYPE : CTA_PROTO_ICMPV6_TYPE, static_cast<std::uint8_t>(icmp_type));
    } else {
      mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sp));
      mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dp));
    }
    mnl_attr_nest_end(nlh, pn);
    mnl_attr_nest_end(nlh, t);
  };
  tuple(CTA_TUPLE_ORIG, a, b, sport, dport);
  tuple(CTA_TUPLE_REPLY, reply_src, a, reply_sport, sport);
  buf.resize(nlh->nlmsg_len);
  return buf;
}
IpAddr ip(const char* s) { return *IpAddr::parse(s); }
}  // namespace

TEST(CtDecode, RecordedTcpNewEvent) {
  auto bytes = fakes::read_hex(data("ct_tcp.hex"));
  ASSERT_GT(bytes.size(), 20u);
  auto f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(bytes.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->src.to_string(), "10.231.0.2");
  EXPECT_EQ(f->dst.to_string(), "10.231.0.3");
  EXPECT_EQ(f->proto, Proto::tcp);
  EXPECT_EQ(f->dport, 8080);
  EXPECT_GT(f->sport, 1024);
}

// Found by fuzz_conntrack: a second message claiming 0xffffffff bytes passed mnl_nlmsg_ok (compared as
// an int, -1), so the listener decoded far past the datagram and mnl_nlmsg_next walked backwards (a hang).
TEST(NetlinkWalk, AMessageLongerThanTheDatagramEndsTheWalk) {
  auto bytes = fakes::read_hex(data("ct_tcp.hex"));
  const auto first = bytes.size();
  bytes.resize(first + 64, 0);
  const std::uint32_t huge = 0xffffffff;
  std::memcpy(bytes.data() + first, &huge, sizeof huge);
  int len = static_cast<int>(bytes.size());
  int walked = 0;
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data()); nlmsg_fits(nlh, len) && walked < 10;
       nlh = mnl_nlmsg_next(nlh, &len))
    ++walked;
  EXPECT_EQ(walked, 1) << "only the recorded event is a whole message";
  const std::uint32_t too_long = static_cast<std::uint32_t>(bytes.size() - first) + 4;  // ends past the datagram
  std::memcpy(bytes.data() + first, &too_long, sizeof too_long);
  EXPECT_FALSE(nlmsg_fits(reinterpret_cast<const nlmsghdr*>(bytes.data() + first), static_cast<int>(bytes.size() - first)));
}

TEST(CtDecode, RecordedUdpNewEvent) {
  auto bytes = fakes::read_hex(data("ct_udp.hex"));
  auto f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(bytes.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->src.to_string(), "10.231.0.4");
  EXPECT_EQ(f->dst.to_string(), "10.231.0.2");
  EXPECT_EQ(f->proto, Proto::udp);
  EXPECT_EQ(f->dport, 53);
}

// A protocol number attribute without its byte: mnl_attr_get_u8 read the next attribute's length
// instead (here 6, "tcp"), and past the datagram when it came last (a crash; fuzz corpus
// conntrack/regress-empty-proto-num-at-end.bin). Short attributes are now absent attributes.
TEST(CtDecode, AttributesShorterThanTheirTypeAreNotRead) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  auto* t = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
  auto* ipn = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, ip("10.0.0.2").bytes.data());
  mnl_attr_put(nlh, CTA_IP_V4_DST, 4, ip("10.0.0.4").bytes.data());
  mnl_attr_nest_end(nlh, ipn);
  auto* pn = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put(nlh, CTA_PROTO_NUM, 0, nullptr);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(40000));
  mnl_attr_put(nlh, CTA_PROTO_DST_PORT, 1, "\x50");
  mnl_attr_nest_end(nlh, pn);
  mnl_attr_nest_end(nlh, t);
  EXPECT_FALSE(conntrack::decode_ct_message(nlh)) << "no protocol: no flow";
}

// A reply tuple of the other family is no DNAT target: the flow keeps two addresses of one family.
TEST(CtDecode, AReplyOfTheOtherFamilyIsNotTheServer) {
  auto msg = build_ct(AF_INET, ip("10.0.0.2"), ip("10.0.0.4"), ip("fd00::7"), IPPROTO_TCP, 40000, 80, 8080, -1, AF_INET6);
  auto f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(msg.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->dst.to_string(), "10.0.0.4");
  EXPECT_EQ(f->dport, 80);
}

TEST(CtDecode, DnatNamesTheRealServer) {
  auto msg = build_ct(AF_INET, ip("10.0.0.2"), ip("192.0.2.10"), ip("10.0.0.7"), IPPROTO_TCP, 40000, 80, 8080);
  auto f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(msg.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->dst.to_string(), "10.0.0.7");
  EXPECT_EQ(f->dport, 8080);
}

TEST(CtDecode, Ipv6IcmpAndSctp) {
  auto icmp = build_ct(AF_INET6, ip("fd00::2"), ip("fd00::3"), ip("fd00::3"), IPPROTO_ICMPV6, 0, 0, 0, 128);
  auto f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(icmp.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->proto, Proto::icmpv6);
  EXPECT_EQ(f->icmp_type, 128);
  EXPECT_EQ(f->dst.to_string(), "fd00::3");
  auto sctp = build_ct(AF_INET6, ip("fd00::2"), ip("fd00::3"), ip("fd00::3"), IPPROTO_SCTP, 5000, 3868, 3868);
  f = conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(sctp.data()));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->proto, Proto::sctp);
  EXPECT_EQ(f->dport, 3868);
}

TEST(CtDecode, IgnoresUnmodelledProtocolsAndOtherMessages) {
  auto gre = build_ct(AF_INET, ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.3"), 47, 0, 0, 0);
  EXPECT_FALSE(conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(gre.data())));
  auto msg = build_ct(AF_INET, ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.3"), IPPROTO_TCP, 1, 2, 2);
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  EXPECT_FALSE(conntrack::decode_ct_message(nlh));
  // Truncated: the header claims less than an nfgenmsg.
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  nlh->nlmsg_len = NLMSG_LENGTH(1);
  EXPECT_FALSE(conntrack::decode_ct_message(nlh));
}

TEST(RtnlDecode, RecordedIpv4Address) {
  auto bytes = fakes::read_hex(data("rt_v4.hex"));
  auto r = rtnl::decode_address(reinterpret_cast<const nlmsghdr*>(bytes.data()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addr.to_string(), "10.231.0.44");
  EXPECT_EQ(r->prefix, 24);
  EXPECT_EQ(r->scope, RT_SCOPE_UNIVERSE);
  EXPECT_GT(r->ifindex, 0);
}

TEST(RtnlDecode, RecordedIpv6AddressAndUsableFilter) {
  auto bytes = fakes::read_hex(data("rt_v6.hex"));
  auto r = rtnl::decode_address(reinterpret_cast<const nlmsghdr*>(bytes.data()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->addr.to_string(), "fd00:231::4");
  EXPECT_EQ(r->prefix, 64);
  rtnl::AddressRecord lo{1, ip("127.0.0.1"), 8, RT_SCOPE_HOST};
  rtnl::AddressRecord ll{2, ip("fe80::1"), 64, RT_SCOPE_LINK};
  auto u = rtnl::usable({*r, lo, ll});
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0], r->addr);
}

// Learning needs to know whether a connection was answered (issue 15).
TEST(CtDecode, PhaseOfEachEventSaysWhetherTheConnectionWasAnswered) {
  using K = conntrack::CtFacts::Kind;
  auto phase = [](Proto p, K k, bool reply, bool assured, int state = -1) {
    return conntrack::flow_phase(p, conntrack::CtFacts{k, reply, assured, state});
  };
  constexpr int kSynSent = 1, kSynRecv = 2, kEstablished = 3, kFinWait = 4, kClose = 7;
  // TCP: the SYN, its SYN/ACK, the completed handshake, then the close.
  EXPECT_EQ(phase(Proto::tcp, K::created, false, false, kSynSent), FlowPhase::attempt);
  EXPECT_EQ(phase(Proto::tcp, K::updated, true, false, kSynRecv), FlowPhase::progress);
  EXPECT_EQ(phase(Proto::tcp, K::updated, true, true, kEstablished), FlowPhase::answered);
  EXPECT_EQ(phase(Proto::tcp, K::updated, true, true, kFinWait), FlowPhase::progress) << "counted once";
  EXPECT_EQ(phase(Proto::tcp, K::destroyed, true, true), FlowPhase::progress);
  // A bare ACK picked up mid-stream is ESTABLISHED without a reply: no conversation.
  EXPECT_EQ(phase(Proto::tcp, K::created, false, false, kEstablished), FlowPhase::attempt);
  // Refused (a reset came back) and unanswered ends.
  EXPECT_EQ(phase(Proto::tcp, K::updated, true, false, kClose), FlowPhase::progress);
  EXPECT_EQ(phase(Proto::tcp, K::destroyed, true, false), FlowPhase::refused);
  EXPECT_EQ(phase(Proto::tcp, K::destroyed, false, false), FlowPhase::unanswered);
  // A dump: answered once assured or established with a reply.
  EXPECT_EQ(phase(Proto::tcp, K::dumped, true, true, 6), FlowPhase::answered);
  EXPECT_EQ(phase(Proto::tcp, K::dumped, false, false, kSynSent), FlowPhase::attempt);
  // UDP and ICMP: the first reply, once; an end without one.
  EXPECT_EQ(phase(Proto::udp, K::created, false, false), FlowPhase::attempt);
  EXPECT_EQ(phase(Proto::udp, K::updated, true, false), FlowPhase::answered);
  EXPECT_EQ(phase(Proto::udp, K::updated, true, true), FlowPhase::progress);
  EXPECT_EQ(phase(Proto::udp, K::destroyed, false, false), FlowPhase::unanswered);
  EXPECT_EQ(phase(Proto::icmp, K::updated, true, false), FlowPhase::answered);
  EXPECT_EQ(phase(Proto::icmp, K::dumped, true, false), FlowPhase::answered);
}

TEST(CtDecode, StatusProtoinfoAndMessageKindAreRead) {
  auto msg = build_ct(AF_INET, ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.3"), IPPROTO_TCP, 40000, 80, 80);
  msg.resize(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED));
  auto* pi = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
  auto* tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
  mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3);  // ESTABLISHED
  mnl_attr_nest_end(nlh, tcp);
  mnl_attr_nest_end(nlh, pi);
  nlh->nlmsg_flags = 0;  // an update event
  auto f = conntrack::decode_ct_message(nlh);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->phase, FlowPhase::answered);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;  // the same, as a new event: still answered
  EXPECT_EQ(conntrack::decode_ct_message(nlh)->phase, FlowPhase::answered);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;  // its end
  EXPECT_EQ(conntrack::decode_ct_message(nlh)->phase, FlowPhase::progress);
  // A recorded NEW event (a SYN): an attempt.
  auto bytes = fakes::read_hex(data("ct_tcp.hex"));
  EXPECT_EQ(conntrack::decode_ct_message(reinterpret_cast<const nlmsghdr*>(bytes.data()))->phase, FlowPhase::attempt);
}
