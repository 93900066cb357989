// nftables change notifications (NFNLGRP_NFTABLES), as NftMonitor reads them: one datagram, walked
// message by message, each fed to the ChangeFilter that decides whether another process changed our
// table. Every message type reaches it (tables, chains, rules, sets, elements, generations, others).
//
// Not fuzzed: the writer's dump replies go through libnftnl's *_nlmsg_parse, which calls exit() on an
// attribute of the wrong size ("nf_tables kernel ABI is broken"; the first input tried here did it). Those
// replies come only from the kernel, on a socket only CAP_NET_ADMIN in the node's namespace can send to;
// the strings read from what they return go through nft::dumped_str (a missing name is "").
#include "fuzz_support.hpp"
#include "nft/monitor.hpp"

using namespace topowall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::GuardedBytes dgram(data, size);
  nft::ChangeFilter filter("topowall", 4242);
  fuzz::for_each_message(dgram, [&](const nlmsghdr* nlh) { (void)filter.feed(nlh); });
  return 0;
}
