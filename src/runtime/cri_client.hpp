// Pod discovery through the Kubernetes CRI (runtime.v1 over gRPC on containerd's or CRI-O's unix socket).
// A ready pod sandbox is one endpoint. The blocking gRPC calls run on the client's own threads, each with
// a deadline, and their results are posted to the agent's loop, so a slow or hung runtime never stalls it.
// Changes are noticed three ways: the runtime's event stream where it has one (containerd >= 1.7, CRI-O),
// inotify on the directories where the runtime creates pods' network namespaces (containerd 1.6 has no
// event stream), and a periodic relist that bounds what both could miss.
#pragma once

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "runtime/cri_sandbox.hpp"
#include "topowall/runtime.hpp"

namespace grpc {
class ClientContext;
}

namespace topowall::runtime {

class CriRpc;

struct CriOptions {
  std::string socket_path;
  // Relist this often whatever else says (the bound on a missed change).
  std::chrono::milliseconds relist_period = std::chrono::seconds(5);
  // After a change is noticed, relist this often until the listing changes (a pod's namespace appears
  // before its sandbox is listed) for at most `burst_for`.
  std::chrono::milliseconds burst_interval = std::chrono::milliseconds(25);
  std::chrono::milliseconds burst_for = std::chrono::seconds(3);
  std::chrono::milliseconds call_timeout = std::chrono::seconds(5);
  // Watched for new network namespaces from the start; a pod's own directory is added when first seen.
  std::vector<std::string> netns_dirs{"/run/netns"};
};

class CriClient final : public Discovery {
 public:
  CriClient(boost::asio::io_context& io, CriOptions opts);
  ~CriClient() override;

  void start(DiscoveryHandler handler) override;
  void stop() override;
  DiscoveryStats stats() const override { return stats_; }
  // Whether the runtime follows events with GetContainerEvents (false on containerd 1.6). For tests.
  bool event_stream() const { return event_stream_; }

 private:
  // What the worker thread learned in one round, handed to the loop.
  struct Round {
    std::vector<Sandbox> sandboxes;
    std::chrono::steady_clock::time_point seen{};
    std::uint64_t status_calls = 0, errors = 0;
    std::uint64_t wakeups = 0;  // changes noticed (event stream, namespace directory) since the last round
    std::string error;  // non-empty: the round failed, `sandboxes` means nothing
  };
  void worker();
  void events_worker();
  [[nodiscard]] Round fetch(std::map<std::string, Sandbox>& cache);
  void watch_dirs(const std::vector<Sandbox>& sandboxes);
  // Blocks until woken, a namespace directory changed, or `timeout`: true if something changed.
  bool wait(std::chrono::milliseconds timeout);
  void wake();
  void deliver(Round round);

  boost::asio::io_context& io_;
  CriOptions opts_;
  std::unique_ptr<CriRpc> rpc_;
  DiscoveryHandler handler_;
  DiscoveryStats stats_;  // the loop's
  SandboxSet set_;        // the loop's
  bool event_stream_ = false;
  bool down_logged_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  // Shared with the threads.
  std::atomic<bool> stopping_{false};
  UniqueFd wake_fd_, inotify_fd_;
  std::set<std::string> watched_;  // worker only
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* events_ctx_ = nullptr;  // under mu_
  std::thread worker_, events_;
};

}  // namespace topowall::runtime
