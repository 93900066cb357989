// NFLOG messages (the packets the ruleset logs): one datagram as recv returns it, walked as
// NflogListener walks it, each decoded by decode_nflog_message (the prefix, the packet's IP and
// transport headers or ARP's addresses, interfaces, the timestamp). A decoded packet names two addresses of one family.
#include <sys/socket.h>

#include "fuzz_support.hpp"
#include "nflog/nflog.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const topowall::fuzz::GuardedBytes dgram(data, size);
  topowall::fuzz::for_each_message(dgram, [](const nlmsghdr* nlh) {
    auto p = topowall::nflog::decode_nflog_message(nlh);
    if (p && (p->flow.src.family != p->flow.dst.family ||
              (p->flow.src.family != AF_INET && p->flow.src.family != AF_INET6)))
      __builtin_trap();
  });
  // The bare packet parsers, on the whole input as a packet: IP, and ARP (the bridge family logs forged
  // and unclassified ARP; its lengths are read from the packet).
  (void)topowall::nflog::parse_packet(data, size);
  if (auto arp = topowall::nflog::parse_arp(data, size); arp && arp->src.family != AF_INET) __builtin_trap();
  return 0;
}
