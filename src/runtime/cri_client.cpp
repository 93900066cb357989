#include "runtime/cri_client.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <utility>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "cri/cri.pb.h"
#include "runtime/cri_rpc.hpp"
#include "runtime/cri_status.hpp"

namespace topowall::runtime {

namespace v1 = ::runtime::v1;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kRetry = std::chrono::seconds(1);
constexpr int kUnimplemented = static_cast<int>(grpc::StatusCode::UNIMPLEMENTED);
constexpr int kNotFound = static_cast<int>(grpc::StatusCode::NOT_FOUND);
}  // namespace

CriClient::CriClient(boost::asio::io_context& io, CriOptions opts)
    : io_(io), opts_(std::move(opts)), rpc_(std::make_unique<CriRpc>(opts_.socket_path, opts_.call_timeout)) {}

CriClient::~CriClient() {
  stop();
  *alive_ = false;
}

void CriClient::start(DiscoveryHandler handler) {
  handler_ = std::move(handler);
  stopping_ = false;
  wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  inotify_fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_fd_)
    spdlog::warn("CRI: inotify unavailable ({}): new pods are found by the event stream or the {} ms relist only",
                 std::strerror(errno), opts_.relist_period.count());
  watched_.clear();
  worker_ = std::thread([this] { worker(); });
  events_ = std::thread([this] { events_worker(); });
}

void CriClient::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    if (events_ctx_) events_ctx_->TryCancel();
  }
  cv_.notify_all();
  wake();
  if (worker_.joinable()) worker_.join();
  if (events_.joinable()) events_.join();
}

void CriClient::wake() {
  if (!wake_fd_) return;
  std::uint64_t one = 1;
  // A full counter already means "wake up": nothing to do when this write fails.
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

bool CriClient::wait(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {inotify_fd_.get(), POLLIN, 0}};
  int n = ::poll(fds, inotify_fd_ ? 2 : 1, static_cast<int>(timeout.count()));
  if (n <= 0) return false;
  alignas(inotify_event) char buf[4096];
  bool changed = false;
  if (fds[0].revents & POLLIN) {
    std::uint64_t v;
    changed |= ::read(wake_fd_.get(), &v, sizeof v) > 0;
  }
  if (inotify_fd_ && (fds[1].revents & POLLIN))
    while (::read(inotify_fd_.get(), buf, sizeof buf) > 0) changed = true;
  return changed;
}

void CriClient::watch_dirs(const std::vector<Sandbox>& sandboxes) {
  if (!inotify_fd_) return;
  auto add = [this](const std::string& dir) {
    if (dir.empty() || dir.starts_with("/proc/") || watched_.count(dir)) return;
    if (::inotify_add_watch(inotify_fd_.get(), dir.c_str(), IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0)
      return;  // not there (yet): retried next round
    watched_.insert(dir);
    spdlog::debug("CRI: watching {} for pods' network namespaces", dir);
  };
  for (const auto& d : opts_.netns_dirs) add(d);
  for (const auto& s : sandboxes) add(std::filesystem::path(s.info.netns_path).parent_path().string());
}

CriClient::Round CriClient::fetch(std::map<std::string, Sandbox>& cache) {
  Round round;
  auto listed = rpc_->list_ready();
  if (!listed) {
    round.error = listed.error().message;
    return round;
  }
  std::map<std::string, Sandbox> next;
  for (const auto& p : *listed) {
    // A sandbox's network, labels and metadata are fixed for its life: one status call per pod.
    if (auto it = cache.find(p.id()); it != cache.end()) {
      next.emplace(p.id(), std::move(it->second));
      continue;
    }
    ++round.status_calls;
    auto st = rpc_->status(p.id(), true);
    if (!st) {
      if (st.error().code != kNotFound) {  // gone between the list and the status call: no error
        ++round.errors;
        spdlog::warn("{}; pod {} skipped until the next relist", st.error().message, p.id().substr(0, 12));
      }
      continue;
    }
    if (st->status().state() != v1::SANDBOX_READY) continue;
    auto sb = sandbox_from_status(*st);
    if (!sb) {
      ++round.errors;
      spdlog::warn("{}; pod skipped", sb.error().message);
      continue;
    }
    next.emplace(p.id(), std::move(*sb));
  }
  cache = std::move(next);
  for (const auto& [id, sb] : cache) round.sandboxes.push_back(sb);
  return round;
}

void CriClient::worker() {
  std::map<std::string, Sandbox> cache;
  std::set<std::string> last_ids;
  auto burst_until = Clock::time_point{};
  auto seen = Clock::time_point{};
  std::uint64_t wakeups = 0;
  while (!stopping_) {
    Round round = fetch(cache);
    round.wakeups = std::exchange(wakeups, 0);
    if (!round.error.empty()) {
      deliver(std::move(round));
      wait(kRetry);
      continue;
    }
    watch_dirs(round.sandboxes);
    std::set<std::string> ids;
    for (const auto& s : round.sandboxes) ids.insert(s.info.id);
    if (ids != last_ids) burst_until = {};  // the change that was noticed has arrived
    last_ids = std::move(ids);
    round.seen = seen;
    deliver(std::move(round));
    auto now = Clock::now();
    auto timeout = now < burst_until ? opts_.burst_interval : opts_.relist_period;
    if (wait(std::chrono::duration_cast<std::chrono::milliseconds>(timeout))) {
      ++wakeups;
      seen = Clock::now();
      burst_until = seen + opts_.burst_for;
    } else if (Clock::now() >= burst_until) {
      seen = {};
    }
  }
}

void CriClient::events_worker() {
  while (!stopping_) {
    grpc::ClientContext ctx;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      events_ctx_ = &ctx;
    }
    bool streaming = false;
    auto st = rpc_->follow_events(ctx, [&](const v1::ContainerEventResponse&) {
      if (!streaming) {
        streaming = true;
        boost::asio::post(io_, [this, alive = alive_] {
          if (*alive) event_stream_ = true;
        });
      }
      wake();
    });
    {
      std::lock_guard lk(mu_);
      events_ctx_ = nullptr;
    }
    if (stopping_) return;
    if (st.error().code == kUnimplemented) {
      spdlog::info("CRI runtime at {} has no event stream (containerd 1.6): following pods' network namespaces "
                   "and relisting every {} ms instead", opts_.socket_path, opts_.relist_period.count());
      return;
    }
    spdlog::debug("{}; following again in 1 s", st.error().message);
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, kRetry, [this] { return stopping_.load(); });
  }
}

void CriClient::deliver(Round round) {
  boost::asio::post(io_, [this, alive = alive_, round = std::move(round)] {
    if (!*alive || stopping_) return;
    try {  // an asio callback: nothing may escape into io_context::run
      stats_.inspects += round.status_calls;
      stats_.events += round.wakeups;
      stats_.errors += round.errors;
      if (!round.error.empty()) {
        ++stats_.errors;
        if (stats_.connected || !down_logged_)
          spdlog::warn("{}; pods are not followed until it answers (retrying every second)", round.error);
        if (stats_.connected) ++stats_.reconnects;
        stats_.connected = false;
        down_logged_ = true;
        return;
      }
      if (!stats_.connected) spdlog::info("CRI runtime at {} answers: following its pods", opts_.socket_path);
      stats_.connected = true;
      set_.apply(round.sandboxes, round.seen, handler_, stats_);
    } catch (const std::exception& e) {
      ++stats_.errors;
      spdlog::error("CRI discovery round failed: {}", e.what());
    }
  });
}

}  // namespace topowall::runtime
