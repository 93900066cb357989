// Named network namespaces (as `ip netns add` makes them) as workloads, for
// hosts without a container runtime API. inotify notices changes at once.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/fd.hpp"
#include "topowall/runtime.hpp"

namespace topowall::netns {

struct NetnsOptions {
  std::string dir = "/run/netns";
  std::string labels_file;  // JSON: {"<netns name>": {"app": "web", ...}}
  std::string name_prefix;  // only namespaces whose names start with this
};

class NetnsWatcher final : public Discovery {
 public:
  NetnsWatcher(boost::asio::io_context& io, NetnsOptions opts);
  ~NetnsWatcher() override;
  void start(DiscoveryHandler handler) override;
  void stop() override;
  DiscoveryStats stats() const override { return stats_; }

 private:
  void arm();
  void on_inotify();
  void rescan();
  void load_labels();
  EndpointInfo info_for(const std::string& name) const;

  boost::asio::io_context& io_;
  NetnsOptions opts_;
  DiscoveryHandler handler_;
  UniqueFd inotify_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  boost::asio::steady_timer settle_;
  std::set<std::string> known_;
  std::map<std::string, std::map<std::string, std::string>> labels_;
  DiscoveryStats stats_;
};

}  // namespace topowall::netns
