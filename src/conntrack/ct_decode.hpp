// Decoding of ctnetlink messages (pure: bytes in, flow out).
#pragma once

#include <linux/netlink.h>

#include <optional>

#include "topowall/types.hpp"

namespace topowall::conntrack {

// What one ctnetlink message says of its connection, as far as learning needs it.
struct CtFacts {
  enum class Kind { created, updated, destroyed, dumped } kind = Kind::created;
  bool seen_reply = false;  // IPS_SEEN_REPLY: the destination sent something back
  bool assured = false;     // IPS_ASSURED: for TCP, the handshake completed
  int tcp_state = -1;       // TCP_CONNTRACK_*; -1 when the message has none (destroy events carry none)
};

// Whether the connection is a conversation (pure). TCP: answered on the update that reaches
// ESTABLISHED with a reply seen (a bare ACK that conntrack picks up mid-stream has none) or, in a dump,
// once assured; a destroyed one never assured was refused (a reset came back) or unanswered. Other
// protocols: answered on the first reply (the update that sets SEEN_REPLY, before ASSURED follows).
FlowPhase flow_phase(Proto proto, const CtFacts& facts);

// A conntrack event (new, update, destroy) or dump entry -> the flow it describes. The destination
// is the reply tuple's source when the flow was DNATed (a published port), so
// edges name the real server. nullopt for protocols the graph does not model.
std::optional<FlowTuple> decode_ct_message(const nlmsghdr* nlh);

}  // namespace topowall::conntrack
