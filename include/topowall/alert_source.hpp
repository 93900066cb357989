// Packets the ruleset logged (NFLOG in the agent, a fake in tests).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "topowall/result.hpp"
#include "topowall/types.hpp"

namespace topowall {

struct LoggedPacket {
  FlowTuple flow;
  bool dropped = false;  // "topowall:drop" (enforce) vs "topowall:pass" (monitor)
  std::string reason;    // the prefix's third part: "" (no edge), "ctmark", "spoof" or "unclassified"
  bool arp = false;       // an ARP packet: flow holds its sender and target addresses only
  std::uint32_t indev = 0;  // the interface it came in on (for the guard's: the container's host-side port)
  TimePoint when{};
};

struct AlertSourceStats {
  std::uint64_t packets = 0;
  std::uint64_t undecodable = 0;
  std::uint64_t enobufs = 0;  // the kernel dropped log messages
  std::uint64_t errors = 0;
};

using AlertHandler = std::function<void(const LoggedPacket&)>;

class AlertSource {
 public:
  virtual ~AlertSource() = default;
  [[nodiscard]] virtual Status start(AlertHandler handler) = 0;
  virtual void stop() = 0;
  virtual AlertSourceStats stats() const = 0;
};

}  // namespace topowall
