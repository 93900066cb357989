// Walking the messages of one netlink datagram.
#pragma once

#include <libmnl/libmnl.h>

namespace topowall {

// Whether a whole message starts at `nlh` within the `len` bytes left. mnl_nlmsg_ok compares the
// message's length as an int: 2^31 or more reads as negative and passes, the decoder then reads far
// past the datagram and mnl_nlmsg_next walks backwards (a hang, found by fuzz_conntrack). Checked
// unsigned too here; mnl_nlmsg_ok first makes sure the header itself is there to read.
inline bool nlmsg_fits(const nlmsghdr* nlh, int len) {
  return mnl_nlmsg_ok(nlh, len) && nlh->nlmsg_len <= static_cast<unsigned>(len);
}

}  // namespace topowall
