// The kernel's own word on a set's elements: nftables change notifications (NFNLGRP_NFTABLES, what
// `nft monitor` prints), read by a thread of the benchmark and timestamped on receipt. It observes the
// kernel, not the agent's account of what it did.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "common.hpp"

namespace topowall::bench {

class SetWatch {
 public:
  // (IPv4 address in host order, added (else deleted), when the notification was read)
  using Event = std::function<void(std::uint32_t, bool, Clk::time_point)>;
  // Follows the elements of inet `table` `set` (an IPv4-keyed set); `ev` runs on the watch's thread.
  SetWatch(std::string table, std::string set, Event ev);
  ~SetWatch();
  SetWatch(const SetWatch&) = delete;
  SetWatch& operator=(const SetWatch&) = delete;
  bool ok() const { return fd_ >= 0; }
  // Notifications the kernel dropped (ENOBUFS): the figures are incomplete when not 0.
  std::uint64_t overruns() const { return overruns_; }

 private:
  void run();
  void feed(const void* nlh, Clk::time_point t);
  std::string table_, set_;
  Event ev_;
  int fd_ = -1, wake_[2] = {-1, -1};
  std::atomic<std::uint64_t> overruns_{0};
  std::thread thread_;
};

}  // namespace topowall::bench
