// Conntrack NEW events and dump entries (ctnetlink): one datagram as recv returns it, walked message by
// message as CtListener walks it, each decoded by decode_ct_message. A decoded flow names two
// addresses of one family.
#include <sys/socket.h>

#include "conntrack/ct_decode.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const topowall::fuzz::GuardedBytes dgram(data, size);
  topowall::fuzz::for_each_message(dgram, [](const nlmsghdr* nlh) {
    auto f = topowall::conntrack::decode_ct_message(nlh);
    if (f && (f->src.family != f->dst.family || (f->src.family != AF_INET && f->src.family != AF_INET6)))
      __builtin_trap();
  });
  return 0;
}
