// Watching a netlink socket's descriptor on the event loop without owning it (the libmnl socket does).
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>

namespace topowall {

// Cancels the wait and lets go of the descriptor without closing it: its socket's owner closes it.
inline void release_descriptor(std::unique_ptr<boost::asio::posix::stream_descriptor>& sd) {
  if (!sd) return;
  boost::system::error_code ec;
  sd->cancel(ec);
  sd->release();
  sd.reset();
}

}  // namespace topowall
