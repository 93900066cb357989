// Graphs too large for one control line travel through a descriptor the client passes with its request
// (SCM_RIGHTS, docs/PROTOCOL.md "Large graphs"): topology.import reads a regular file with a bounded
// streaming parse, topology.export writes into a pipe as fast as the client reads it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "topowall/result.hpp"
#include "topowall/topology/graph.hpp"

namespace topowall::agent {

// The graph in the regular file open at `fd` (the client's descriptor: the agent opens no path for it).
// Refused: anything but a regular file (a pipe or a device could block the agent or never end), a file
// on FUSE (its reads can block for ever), more than `max_bytes`, and whatever graph_from_stream refuses.
// `code` is "too_large", "bad_params" or "invalid_graph", for the answer.
struct GraphReadError {
  std::string code, message;
};
[[nodiscard]] Result<topology::Graph> read_graph_fd(int fd, std::size_t max_bytes, GraphReadError& why);

// Exports being written into clients' pipes, each a part at a time as its pipe has room, so the agent
// holds one part per export (not the whole text) and its loop never waits on a slow reader. A reader
// that takes nothing for kStall, or closes, ends its export.
class ExportStreams {
 public:
  // Appends the next part to `out`; false when that was the last.
  using NextFn = std::function<bool(std::string& out, std::size_t budget)>;
  static constexpr std::size_t kMaxActive = 8;
  static constexpr std::size_t kPart = 64 << 10;

  static constexpr std::chrono::milliseconds kStall{30000};

  explicit ExportStreams(boost::asio::io_context& io, std::chrono::milliseconds stall = kStall) : io_(io), stall_(stall) {}
  ~ExportStreams();
  ExportStreams(const ExportStreams&) = delete;
  ExportStreams& operator=(const ExportStreams&) = delete;

  // Starts writing into a copy of `fd`, which must be the write end of a pipe; the error says why not
  // (its message is for the client).
  [[nodiscard]] Status start(int fd, NextFn next);
  std::size_t active() const { return jobs_.size(); }

 private:
  struct Job;
  void pump(const std::shared_ptr<Job>& job);
  void finish(const std::shared_ptr<Job>& job);

  boost::asio::io_context& io_;
  std::chrono::milliseconds stall_;
  std::list<std::shared_ptr<Job>> jobs_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace topowall::agent
