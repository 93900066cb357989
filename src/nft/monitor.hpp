// Who else changed our tables: nftables change notifications (NFNLGRP_NFTABLES), as firewalld and
// kube-proxy follow them. A transaction that touched a table named ours (inet or bridge) and was
// committed by another process is reported once, at its NEWGEN message. Lost notifications (ENOBUFS)
// are only counted (losses()): our own large transactions overrun any buffer, and reporting them as
// tampering made each repair's apply overrun again, a reconcile loop. The programmer's periodic check
// reads our tables back and compares whenever losses() moved, so a change hidden by a flood is still
// found, at a bounded rate.
#pragma once

#include <linux/netlink.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "topowall/result.hpp"
#include "topowall/ruleset_writer.hpp"

namespace topowall::nft {

// Pure: decide from one notification. Returns true when a foreign transaction touching `table` ends.
class ChangeFilter {
 public:
  ChangeFilter(std::string table, std::uint32_t own_pid) : table_(std::move(table)), pid_(own_pid) {}
  bool feed(const nlmsghdr* nlh);

 private:
  std::string table_;
  std::uint32_t pid_;
  bool touched_ = false;
};

class NftMonitor final : public RulesetWatch {
 public:
  static constexpr int kDefaultRcvbuf = 16 << 20;
  // `rcvbuf`: the socket's receive buffer, bytes (tests make it small to force overruns).
  NftMonitor(boost::asio::io_context& io, std::string table, int rcvbuf = kDefaultRcvbuf);
  ~NftMonitor() override;
  [[nodiscard]] Status start(std::function<void(const std::string&)> on_change) override;
  void stop() override;
  std::uint64_t losses() const override { return overruns_; }

 private:
  void arm();
  void drain();

  boost::asio::io_context& io_;
  ChangeFilter filter_;
  std::function<void(const std::string&)> on_change_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  int rcvbuf_;
  std::uint64_t overruns_ = 0;
};

}  // namespace topowall::nft
