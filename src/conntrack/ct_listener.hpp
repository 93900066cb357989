// ctnetlink event subscriber (new, update, destroy) on the host namespace.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <vector>

#include "common/handles.hpp"
#include "conntrack/ct_dump.hpp"
#include "topowall/flow_source.hpp"

namespace topowall::conntrack {

struct CtListenerOptions {
  int rcvbuf_bytes = 4 << 20;    // sized for bursts of new connections
  int max_rcvbuf_bytes = 128 << 20;
  // The ruleset's events bit (topology::event_mark): only entries carrying it are delivered, filtered in the
  // kernel. 0: every event (a failed filter falls back to that too, logged and counted).
  std::uint32_t event_mark = 0;
};

// Dump the conntrack table, calling `fn` for every entry. Blocking; bounded by the table size.
[[nodiscard]] Status dump_conntrack(const std::function<void(const FlowTuple&)>& fn);

// Delete every conntrack entry whose flow `doomed` says must go (revoked
// permissions must not live on in established connections). Returns how many went.
[[nodiscard]] Result<std::size_t> delete_conntrack(const std::function<bool(const FlowTuple&)>& doomed);

class CtListener final : public FlowSource {
 public:
  CtListener(boost::asio::io_context& io, CtListenerOptions opts = {});
  ~CtListener() override;

  [[nodiscard]] Status start(FlowHandler handler) override;
  void stop() override;
  [[nodiscard]] Status resync() override;
  FlowSourceStats stats() const override { return stats_; }
  [[nodiscard]] Status set_subscribed(bool wanted) override;
  // Replay the table through the handler on the loop in bounded turns (see CtAsyncDump); what an
  // overrun runs. A request while one runs is coalesced into one more dump after it (events lost
  // meanwhile may belong to entries the running dump has already passed).
  void resync_in_background();
  bool resync_running() const { return dump_ && dump_->running(); }

 private:
  void attach_filter(int fd);
  void arm();
  void drain();
  void on_overrun();
  void on_datagram(const char* data, std::size_t len);
  void replay(const FlowTuple& f);
  void on_background_resync_done(const Status& s);

  boost::asio::io_context& io_;
  CtListenerOptions opts_;
  FlowHandler handler_;
  MnlSocketPtr sock_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> sd_;
  // recvmmsg slots: one event per datagram, many datagrams per system call under load.
  static constexpr std::size_t kSlots = 32, kSlotBytes = 16384;
  std::vector<char> buf_;
  FlowSourceStats stats_;
  std::unique_ptr<CtAsyncDump> dump_;  // the background resync, created on the first overrun
  bool resync_again_ = false;          // an overrun came while it ran
  bool logged_subscribe_failure_ = false;
};

}  // namespace topowall::conntrack
