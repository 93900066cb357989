// NFLOG messages (the packets the ruleset logs): one datagram as recv returns it, walked as
// NflogListener walks it, each decoded by decode_nflog_message (the prefix, the packet's IP and
// transport headers, interfaces, the timestamp). A decoded packet names two addresses of one family.
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
  // The bare packet parser, on the whole input as a packet.
  (void)topowall::nflog::parse_packet(data, size);
  return 0;
}
