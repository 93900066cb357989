#include "rtnl/address_watcher.hpp"

#include <spdlog/spdlog.h>

#include "rtnl/addresses.hpp"

namespace topowall::rtnl {

RtnlAddressWatcher::~RtnlAddressWatcher() {
  for (auto& [id, w] : watches_) {
    boost::system::error_code ec;
    if (w->sd) w->sd->close(ec);
  }
}

void RtnlAddressWatcher::refresh(Watch& w) {
  auto recs = list_addresses(w.path);
  if (!recs) {
    ++errors_;
    spdlog::debug("addresses of {}: {}", w.path.empty() ? "host" : w.path, recs.error().message);
    return;
  }
  AddressSnapshot snap{usable(*recs), {}};
  if (!w.path.empty()) {  // the host's own addresses sit behind no port
    auto ports = list_ports(w.path);
    if (!ports) {
      ++errors_;
      spdlog::debug("ports of {}: {}", w.path, ports.error().message);
    } else {
      for (const auto& r : *recs)
        if (auto it = ports->find(r.ifindex); it != ports->end()) snap.ports[r.addr] = it->second;
    }
  }
  w.cb(snap);
}

void RtnlAddressWatcher::watch(const std::string& id, const std::string& path, AddressCallback cb) {
  unwatch(id);
  auto w = std::make_shared<Watch>();
  w->path = path;
  w->cb = std::move(cb);
  // Subscribe before the first read so that no change falls between them.
  auto fd = open_address_monitor(path);
  if (fd) {
    w->sd = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd->release());
  } else {
    ++errors_;
    spdlog::warn("cannot follow address changes in {}: {}", path.empty() ? "host" : path, fd.error().message);
  }
  watches_[id] = w;
  refresh(*w);
  if (w->sd) arm(id, w);
}

void RtnlAddressWatcher::arm(const std::string& id, std::shared_ptr<Watch> w) {
  w->sd->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this, id, w](boost::system::error_code ec) {
    if (ec || !w->sd || !w->sd->is_open()) return;
    drain_monitor(w->sd->native_handle());
    refresh(*w);
    if (w->sd && w->sd->is_open()) arm(id, w);
  });
}

void RtnlAddressWatcher::unwatch(const std::string& id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  if (it->second->sd) {
    boost::system::error_code ec;
    it->second->sd->close(ec);
  }
  watches_.erase(it);
}

}  // namespace topowall::rtnl
