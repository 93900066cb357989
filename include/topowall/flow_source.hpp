// Where new connections come from (ctnetlink in the agent, a fake in tests).
#pragma once

#include <cstdint>
#include <functional>

#include "topowall/result.hpp"
#include "topowall/types.hpp"

namespace topowall {

struct FlowSourceStats {
  std::uint64_t messages = 0;        // netlink messages received
  std::uint64_t flows = 0;           // decoded into flows
  std::uint64_t undecodable = 0;     // not a flow the graph models
  std::uint64_t enobufs = 0;         // kernel dropped events: socket buffer overran
  std::uint64_t resyncs = 0;         // dumps run to recover after a loss
  std::uint64_t resyncs_coalesced = 0;  // overruns while a dump ran: folded into one more dump after it
  std::uint64_t resync_entries = 0;  // flows replayed from dumps
  std::uint64_t errors = 0;          // other receive errors
  std::uint64_t filter_failures = 0; // the event filter could not be attached: every event is received
  std::uint64_t subscribe_failures = 0;  // joining or leaving the event groups failed: left subscribed
  int rcvbuf_bytes = 0;              // current receive buffer
  bool subscribed = true;            // in the event groups (false: paused, the kernel builds no events for us)
};

// `resync` is true for flows replayed from a dump rather than live events.
using FlowHandler = std::function<void(const FlowTuple&, bool resync)>;

class FlowSource {
 public:
  virtual ~FlowSource() = default;
  [[nodiscard]] virtual Status start(FlowHandler handler) = 0;
  virtual void stop() = 0;
  // Replay every current conntrack entry through the handler.
  [[nodiscard]] virtual Status resync() = 0;
  virtual FlowSourceStats stats() const = 0;
  // Join (true) or leave (false) the event groups, keeping the source open. The kernel builds an event
  // message for every connection while anyone listens, whatever a filter then drops: with nothing
  // learning the agent leaves, so connections cost no event at all. A failure leaves it subscribed
  // (learning must never miss events) and is counted in subscribe_failures.
  [[nodiscard]] virtual Status set_subscribed(bool wanted) = 0;
};

}  // namespace topowall
