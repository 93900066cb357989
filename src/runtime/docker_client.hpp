// Container discovery through the Docker Engine API on a unix socket
// (dockerd, or `podman system service`): list, inspect, then the event stream.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "topowall/result.hpp"
#include "topowall/runtime.hpp"

namespace topowall::runtime {

class DockerClient final : public Discovery {
 public:
  // `timeout`: one request, start to answer (a stalled runtime must not hold discovery forever).
  DockerClient(boost::asio::io_context& io, std::string socket_path, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~DockerClient() override;

  void start(DiscoveryHandler handler) override;
  void stop() override;
  DiscoveryStats stats() const override { return stats_; }

  // One GET returning JSON; exposed for tests and the lab tools.
  void get(const std::string& target, std::function<void(Result<nlohmann::json>)> cb);

 private:
  struct EventStream;
  void connect_events();
  void read_events(std::shared_ptr<EventStream> ev);
  void on_event_line(const std::string& line);
  void list_all();
  // `init`: the event was podman's init (network up, process not started yet).
  void inspect_and_upsert(const std::string& id, std::chrono::steady_clock::time_point seen, bool init = false);
  void on_inspect(const std::string& id, const Result<nlohmann::json>& r, std::chrono::steady_clock::time_point seen,
                  bool init = false);
  void resync_if_unanswered(const Error& e, std::uint64_t gen, const std::string& id);
  void skip_host_network(const std::string& id, const std::string& why);
  void schedule_reconnect();

  boost::asio::io_context& io_;
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  DiscoveryHandler handler_;
  DiscoveryStats stats_;
  std::shared_ptr<EventStream> events_;
  boost::asio::steady_timer retry_;
  std::set<std::string> known_;         // containers reported as upserted
  std::set<std::string> host_network_;  // running containers skipped: they share the node's network namespace
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
  std::uint64_t generation_ = 0;  // one per event-stream connection: late answers to an older one are ignored
};

}  // namespace topowall::runtime
