// AddressWatcher over rtnetlink: one subscribed socket per namespace.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <map>
#include <memory>

#include "topowall/address_watcher.hpp"

namespace topowall::rtnl {

class RtnlAddressWatcher final : public AddressWatcher {
 public:
  explicit RtnlAddressWatcher(boost::asio::io_context& io) : io_(io) {}
  ~RtnlAddressWatcher() override;
  void watch(const std::string& id, const std::string& netns_path, AddressCallback cb) override;
  void unwatch(const std::string& id) override;
  std::uint64_t errors() const { return errors_; }

 private:
  struct Watch {
    std::string path;
    AddressCallback cb;
    std::unique_ptr<boost::asio::posix::stream_descriptor> sd;
  };
  void arm(const std::string& id, std::shared_ptr<Watch> w);
  void refresh(Watch& w);

  boost::asio::io_context& io_;
  std::map<std::string, std::shared_ptr<Watch>> watches_;
  std::uint64_t errors_ = 0;
};

}  // namespace topowall::rtnl
