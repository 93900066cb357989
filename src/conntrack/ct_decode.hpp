// Decoding of ctnetlink messages (pure: bytes in, flow out).
#pragma once

#include <linux/netlink.h>

#include <optional>

#include "topowall/types.hpp"

namespace topowall::conntrack {

// A conntrack NEW event or dump entry -> the flow it describes. The destination
// is the reply tuple's source when the flow was DNATed (a published port), so
// edges name the real server. nullopt for protocols the graph does not model.
std::optional<FlowTuple> decode_ct_message(const nlmsghdr* nlh);

}  // namespace topowall::conntrack
