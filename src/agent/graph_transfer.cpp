#include "agent/graph_transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <spdlog/spdlog.h>

#include "common/fd.hpp"
#include "topowall/topology/graph_stream.hpp"

namespace topowall::agent {

namespace asio = boost::asio;

namespace {
constexpr long kFuseMagic = 0x65735546;  // FUSE_SUPER_MAGIC
}  // namespace

Result<topology::Graph> read_graph_fd(int fd, std::size_t max_bytes, GraphReadError& why) {
  const auto refuse = [&](const char* code, std::string message) {
    why = {code, message};
    return Error{std::move(message)};
  };
  struct stat st{};
  if (fd < 0) return refuse("bad_params", "no descriptor came with the request: send the graph file's descriptor "
                                          "with the request line (SCM_RIGHTS), as `topowall topology import` does");
  if (fstat(fd, &st) != 0) return refuse("bad_params", std::string("the passed descriptor: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return refuse("bad_params", "the passed descriptor is not a regular file; save the graph to a file and pass that");
  if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) return refuse("bad_params", "the passed file is not open for reading");
  struct statfs fs{};
  if (fstatfs(fd, &fs) == 0 && fs.f_type == kFuseMagic)
    return refuse("bad_params", "the passed file is on a FUSE filesystem, whose reads may never return; copy it to a local file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
    return refuse("too_large", "the graph file is " + std::to_string(st.st_size) + " bytes, over the import limit of " +
                                   std::to_string(max_bytes) + " (--max-import-bytes)");
  // pread at our own offset: the client shares the descriptor's offset and may move it.
  off_t offset = 0;
  topology::ReadFn read = [fd, &offset](char* buf, std::size_t cap) -> Result<std::size_t> {
    for (;;) {
      ssize_t n = ::pread(fd, buf, cap, offset);
      if (n >= 0) {
        offset += n;
        return static_cast<std::size_t>(n);
      }
      if (errno != EINTR) return Error{std::string("reading the graph file: ") + std::strerror(errno), errno};
    }
  };
  // The file may grow after the fstat: the parse stops at the same limit.
  auto g = topology::graph_from_stream(read, max_bytes);
  if (!g) {
    const bool over = g.error().message.find("over the import limit") != std::string::npos;
    return refuse(over ? "too_large" : "invalid_graph", g.error().message);
  }
  return g;
}

struct ExportStreams::Job {
  Job(asio::io_context& io, int fd, NextFn n) : pipe(io, fd), stall(io), next(std::move(n)) {}
  asio::posix::stream_descriptor pipe;
  asio::steady_timer stall;
  NextFn next;
  std::string part;
  std::size_t written = 0;
  bool more = true;
};

ExportStreams::~ExportStreams() {
  *alive_ = false;
  for (auto& j : jobs_) {
    boost::system::error_code ec;
    j->pipe.close(ec);
    j->stall.cancel();
  }
}

Status ExportStreams::start(int fd, NextFn next) {
  struct stat st{};
  if (fd < 0) return Error{"no descriptor came with the request: send the write end of a pipe with it (SCM_RIGHTS)"};
  if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))
    return Error{"the passed descriptor is not a pipe; pass the write end of one"};
  if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) return Error{"the passed pipe end is not open for writing"};
  if (jobs_.size() >= kMaxActive)
    return Error{"too many exports in progress (" + std::to_string(kMaxActive) + "); retry when one has finished"};
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own) return Error{std::string("cannot keep the passed pipe: ") + std::strerror(errno)};
  // Non-blocking: a reader that stops must never stop the agent's loop. The flag is on the pipe end the
  // client gave away; its own end, the read end, is another open file and keeps its mode.
  if (fcntl(own.get(), F_SETFL, fcntl(own.get(), F_GETFL) | O_NONBLOCK) != 0)
    return Error{std::string("cannot make the passed pipe non-blocking: ") + std::strerror(errno)};
  auto job = std::make_shared<Job>(io_, own.release(), std::move(next));
  jobs_.push_back(job);
  pump(job);
  return ok_status();
}

void ExportStreams::pump(const std::shared_ptr<Job>& job) {
  if (job->written == job->part.size()) {
    if (!job->more) return finish(job);
    job->part.clear();
    job->written = 0;
    try {
      job->more = job->next(job->part, kPart);
    } catch (const std::exception& e) {  // never out of the event loop: the export ends short
      spdlog::error("topology export failed while writing: {}", e.what());
      return finish(job);
    }
  }
  job->stall.expires_after(stall_);
  job->stall.async_wait([job, alive = alive_, stall = stall_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    spdlog::warn("a topology export's reader took nothing for {} ms; ending the export", stall.count());
    boost::system::error_code ignored;
    job->pipe.close(ignored);  // the pending write completes with operation_aborted
  });
  job->pipe.async_write_some(asio::buffer(job->part.data() + job->written, job->part.size() - job->written),
                             [this, job, alive = alive_](boost::system::error_code ec, std::size_t n) {
                               if (!*alive) return;
                               job->stall.cancel();
                               if (ec) return finish(job);  // the reader closed (EPIPE) or stalled
                               job->written += n;
                               pump(job);
                             });
}

void ExportStreams::finish(const std::shared_ptr<Job>& job) {
  boost::system::error_code ec;
  job->pipe.close(ec);  // the reader sees the end of the text
  job->stall.cancel();
  jobs_.remove(job);
}

}  // namespace topowall::agent
