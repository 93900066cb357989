// The ctnetlink event socket's classic BPF filter: the kernel drops, before queueing it to the agent, every
// event whose conntrack entry lacks the ruleset's events bit (topology::event_mark), so a connection that
// needs nothing from the agent (allowed by an edge while enforcing or monitoring) costs it no wake-up.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <vector>

#include "topowall/result.hpp"

namespace topowall::conntrack {

// Passes a message whose top-level CTA_MARK has `bit` set; drops the rest (no CTA_MARK: mark 0).
std::vector<sock_filter> event_filter(std::uint32_t bit);

// SO_ATTACH_FILTER of event_filter(bit) on `fd`.
[[nodiscard]] Status attach_event_filter(int fd, std::uint32_t bit);

}  // namespace topowall::conntrack
