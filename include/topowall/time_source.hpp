// Time, injected: the agent's classes read the clock through this, so tests of holds, expiry, windows
// and debouncing run in simulated time, exactly at their boundaries, without sleeping.
#pragma once

#include <chrono>

#include "topowall/types.hpp"

namespace topowall {

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual TimePoint now() const = 0;                                 // wall clock: stamps, expiry
  virtual std::chrono::steady_clock::time_point monotonic() const = 0;  // intervals
};

class RealTimeSource final : public TimeSource {
 public:
  TimePoint now() const override { return Clock::now(); }
  std::chrono::steady_clock::time_point monotonic() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace topowall
