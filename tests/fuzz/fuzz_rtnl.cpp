// rtnetlink address messages (RTM_NEWADDR/RTM_DELADDR) through libnl's parser, as decode_address and the
// address dumps of list_addresses read them: one datagram, message by message.
#include <sys/socket.h>

#include "fuzz_support.hpp"
#include "rtnl/addresses.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const topowall::fuzz::GuardedBytes dgram(data, size);
  topowall::fuzz::for_each_message(dgram, [](const nlmsghdr* nlh) {
    auto r = topowall::rtnl::decode_address(nlh);
    if (r && r->addr.family != AF_INET && r->addr.family != AF_INET6) __builtin_trap();
  });
  return 0;
}
