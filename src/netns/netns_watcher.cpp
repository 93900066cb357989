#include "netns/netns_watcher.hpp"

#include <dirent.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <spdlog/spdlog.h>

#include "common/handles.hpp"
#include "topowall/topology/json_limits.hpp"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace topowall::netns {

NetnsWatcher::NetnsWatcher(boost::asio::io_context& io, NetnsOptions opts)
    : io_(io), opts_(std::move(opts)), settle_(io) {}

NetnsWatcher::~NetnsWatcher() { stop(); }

void NetnsWatcher::load_labels() {
  if (opts_.labels_file.empty()) return;
  std::ifstream in(opts_.labels_file);
  if (!in) {
    spdlog::warn("netns labels file {} unreadable: {}; namespaces are named by their own names",
                 opts_.labels_file, std::strerror(errno));
    return;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = topology::parse_json(ss.str());
  if (!parsed || !parsed->is_object()) {
    spdlog::warn("netns labels file {} is {}; ignoring it (expected a JSON object of objects)", opts_.labels_file,
                 parsed ? "not a JSON object" : parsed.error().message);
    return;
  }
  const auto& j = *parsed;
  labels_.clear();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it->is_object()) continue;
    for (auto l = it->begin(); l != it->end(); ++l)
      if (l->is_string()) labels_[it.key()][l.key()] = l->get<std::string>();
  }
}

EndpointInfo NetnsWatcher::info_for(const std::string& name) const {
  EndpointInfo ep;
  ep.kind = EndpointKind::netns;
  ep.id = "netns:" + name;
  ep.name = name;
  ep.netns_path = opts_.dir + "/" + name;
  if (auto it = labels_.find(name); it != labels_.end()) ep.labels = it->second;
  return ep;
}

void NetnsWatcher::start(DiscoveryHandler handler) {
  handler_ = std::move(handler);
  load_labels();
  ::mkdir(opts_.dir.c_str(), 0755);
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_ ||
      inotify_add_watch(inotify_.get(), opts_.dir.c_str(), IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
    ++stats_.errors;
    spdlog::error("cannot watch {}: {}; named namespaces will not be discovered", opts_.dir, std::strerror(errno));
  } else {
    sd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, inotify_.release());
    stats_.connected = true;
    arm();
  }
  rescan();
  handler_(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}});
}

void NetnsWatcher::stop() {
  settle_.cancel();
  if (sd_) {
    boost::system::error_code ec;
    sd_->close(ec);
    sd_.reset();
  }
}

void NetnsWatcher::arm() {
  sd_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec || !sd_) return;
    on_inotify();
    arm();
  });
}

void NetnsWatcher::on_inotify() {
  alignas(inotify_event) char buf[4096];
  while (::read(sd_->native_handle(), buf, sizeof buf) > 0) ++stats_.events;
  // `ip netns add` creates the file, then bind-mounts the namespace on it:
  // rescan now and again shortly so the mount is seen.
  rescan();
  settle_.expires_after(std::chrono::milliseconds(20));
  settle_.async_wait([this](boost::system::error_code ec) {
    if (!ec) rescan();
  });
}

void NetnsWatcher::rescan() {
  std::set<std::string> now;
  DirPtr d(opendir(opts_.dir.c_str()));
  if (int err = errno; !d && err != ENOENT) {
    // Not "no namespaces": keep what is known rather than remove every namespace workload.
    ++stats_.errors;
    spdlog::warn("cannot list {}: {}; keeping the namespaces known so far (check the directory's permissions)",
                 opts_.dir, std::strerror(err));
    return;
  }
  if (d) {
    while (dirent* e = readdir(d.get())) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name.rfind(opts_.name_prefix, 0) != 0) continue;
      struct statfs fs{};
      // Only a mounted namespace counts; a bare file is still being set up.
      if (statfs((opts_.dir + "/" + name).c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC)
        now.insert(name);
    }
  }
  for (auto it = known_.begin(); it != known_.end();) {
    if (!now.count(*it)) {
      handler_(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, "netns:" + *it});
      it = known_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& name : now)
    if (known_.insert(name).second) handler_(DiscoveryEvent{DiscoveryEvent::Kind::upsert, info_for(name), {}});
}

}  // namespace topowall::netns
