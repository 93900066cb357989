// A conntrack table dump read on the event loop in bounded turns.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "common/handles.hpp"
#include "topowall/result.hpp"

struct nlmsghdr;

namespace topowall::conntrack {

// One dump on its own ctnetlink socket. Each loop turn reads datagrams until about kEntriesPerTurn entries
// went to `entry`, then waits for the socket again, so the handlers that share the loop (control socket,
// discovery, the etcd lease) run between turns. The kernel produces the next part of a dump only when
// the previous one was read, so memory stays one datagram buffer plus the socket's receive buffer,
// whatever the table's size. `done` runs on the loop once the dump ended (or failed); it may call
// start() again.
class CtAsyncDump {
 public:
  static constexpr std::size_t kEntriesPerTurn = 256;
  using EntryFn = std::function<void(const nlmsghdr*)>;
  using DoneFn = std::function<void(Status)>;

  CtAsyncDump(boost::asio::io_context& io, EntryFn entry, DoneFn done);
  ~CtAsyncDump();
  CtAsyncDump(const CtAsyncDump&) = delete;
  CtAsyncDump& operator=(const CtAsyncDump&) = delete;

  // Opens a socket and asks for the dump; an error when that failed (nothing then runs).
  [[nodiscard]] Status start();
  bool running() const { return sd_ != nullptr; }
  void cancel();  // drops a running dump; `done` is not called

  std::size_t turns() const { return turns_; }  // loop turns the dumps took (tests, logs)

 private:
  void arm();
  void turn();
  void finish(Status s);
  static int on_message(const nlmsghdr* nlh, void* self);

  boost::asio::io_context& io_;
  EntryFn entry_;
  DoneFn done_;
  MnlSocketPtr sock_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  std::vector<char> buf_;
  unsigned seq_ = 0, portid_ = 0;
  std::size_t in_turn_ = 0, turns_ = 0;
};

}  // namespace topowall::conntrack
