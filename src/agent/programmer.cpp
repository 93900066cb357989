#include "agent/programmer.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

namespace topowall::agent {

namespace {
constexpr auto kMaxRetryDelay = std::chrono::seconds(10);
constexpr std::size_t kMaxTouched = 4096;  // beyond, a full compile is cheaper than patching

// Did `after` take away anything `before` allowed, or give an address a new owner (`moved`)?
bool shrank(const topology::RulesetModel& before, const topology::RulesetModel& after, const std::set<IpAddr>& moved) {
  if (!moved.empty()) return true;  // connections of its previous life must go (see sweep_moved)
  for (const auto& k : before.allow)
    if (!after.allow.count(k)) return true;
  for (auto id : after.enforced)
    if (!before.enforced.count(id)) return true;
  return false;
}

std::uint32_t owner(const topology::RulesetModel& m, const IpAddr& a) {
  const auto& ep = a.is_v4() ? m.ep4 : m.ep6;
  auto it = ep.find(a);
  return it == ep.end() ? 0 : it->second;
}

// The addresses whose owner differs between two models (added, removed, moved).
std::set<IpAddr> moved_addresses(const topology::RulesetModel& before, const topology::RulesetModel& after) {
  std::set<IpAddr> out;
  for (auto [b, a] : {std::pair{&before.ep4, &after.ep4}, std::pair{&before.ep6, &after.ep6}}) {
    for (const auto& [ip, id] : *b) {
      auto it = a->find(ip);
      if (it == a->end() || it->second != id) out.insert(ip);
    }
    for (const auto& [ip, id] : *a)
      if (!b->count(ip)) out.insert(ip);
  }
  return out;
}

std::uint16_t port_of(const FlowTuple& f) { return is_icmp(f.proto) ? f.icmp_type : f.dport; }
}  // namespace

RulesetProgrammer::RulesetProgrammer(boost::asio::io_context& io, const topology::RulesetConfig& cfg,
                                     RulesetWriter* writer, ConntrackDelete conntrack_delete, topology::State& state,
                                     const topology::EndpointTable& endpoints)
    : io_(io),
      cfg_(cfg),
      writer_(writer),
      conntrack_delete_(std::move(conntrack_delete)),
      state_(state),
      endpoints_(endpoints),
      retry_(io),
      spacing_(io) {}

topology::CompileInput RulesetProgrammer::input() const {
  return {state_.graph, endpoints_, state_.modes, time_ ? time_->now() : Clock::now()};
}

void RulesetProgrammer::touch(const std::vector<IpAddr>& addrs) {
  if (addrs.empty()) return;
  touched_addrs_.insert(touched_addrs_.end(), addrs.begin(), addrs.end());
  full_ = full_ || touched_addrs_.size() > kMaxTouched;
  post();
}

void RulesetProgrammer::touch(const topology::EdgeKey& edge) {
  touched_edges_.push_back(edge);
  full_ = full_ || touched_edges_.size() > kMaxTouched;
  post();
}

void RulesetProgrammer::request_full() {
  full_ = true;
  post();
}

void RulesetProgrammer::post() {
  if (posted_ || !writer_) return;
  posted_ = true;
  // Coalesce a burst of changes (a relist, a learning burst) into one transaction.
  // The loop may outlive this programmer (an agent destroyed with work still posted): check first.
  auto run = [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    posted_ = false;
    apply_now();
  };
  const auto due = last_sweep_ + sweep_spacing_;
  if (sweep_spacing_.count() > 0 && std::chrono::steady_clock::now() < due) {
    spacing_.expires_at(due);
    spacing_.async_wait([run](boost::system::error_code ec) {
      if (!ec) run();
    });
    return;
  }
  boost::asio::post(io_, run);
}

void RulesetProgrammer::stop() {
  retry_.cancel();
  spacing_.cancel();
}

void RulesetProgrammer::apply_now() {
  if (!writer_ || !ready_()) return;  // re-requested when discovery syncs
  // No exception may leave an event-loop callback: a failure here is counted, logged and retried in full.
  try {
    if (!full_ && !reconcile_ && last_ && topology::patchable(input(), state_.ids, touched_addrs_))
      apply_patch();
    else
      apply_full();
  } catch (const std::exception& e) {
    ++counters_.handler_errors;
    full_ = true;
    spdlog::error("apply failed: {}", e.what());
  }
}

void RulesetProgrammer::apply_full() {
  touched_addrs_.clear();
  touched_edges_.clear();
  full_ = false;
  auto model = topology::compile(input(), state_.ids, cfg_);
  if (last_ && model == *last_ && !reconcile_) return;
  if (!model.over_capacity.empty() && (!last_ || last_->over_capacity != model.over_capacity))
    spdlog::error("{} workloads have ids beyond the mark bits (--mark-mask {:#x}); they share the overflow id, judged "
                  "as no edge: {}",
                  model.over_capacity.size(), cfg_.mark_mask, *model.over_capacity.begin());
  counters_.ids_over_capacity = model.over_capacity.size();
  ++counters_.applies;
  const auto moved = last_ ? moved_addresses(*last_, model) : std::set<IpAddr>{};
  sweep_moved(moved);
  auto r = writer_->apply(model);
  if (!r) return failed(r.error());
  reconcile_ = false;
  auto before = std::move(last_);
  last_ = std::move(model);
  last_patched_.reset();
  accepted();
  if (!before || !shrank(*before, *last_, moved)) return;
  // Established connections must not outlive their permission: drop every entry the old rules let
  // through that the new ones would not, and every entry of a moved address the new rules would not allow.
  const auto& b = *before;
  const auto& a = *last_;
  sweep([&](const FlowTuple& f) {
    if (topology::evaluate(a, f.src, f.dst, f.proto, port_of(f)) != topology::Verdict::alert_drop) return false;
    return moved.count(f.src) || moved.count(f.dst) ||
           topology::evaluate(b, f.src, f.dst, f.proto, port_of(f)) != topology::Verdict::alert_drop;
  });
}

// The common case (an endpoint came or went, an edge was learned or decided) costs O(change), whatever
// the size of the graph.
void RulesetProgrammer::apply_patch() {
  auto addrs = std::move(touched_addrs_);
  auto edges = std::move(touched_edges_);
  touched_addrs_.clear();
  touched_edges_.clear();
  auto key_of = [&](const topology::EdgeKey& k) -> std::optional<topology::AllowKey> {
    auto s = state_.ids.find(k.src), d = state_.ids.find(k.dst);
    if (!s || !d) return std::nullopt;
    return topology::AllowKey{s, d, static_cast<std::uint8_t>(k.proto), k.port};
  };
  // What these addresses and edges allowed before, to spot revocations and owner changes.
  std::map<IpAddr, std::uint32_t> owner_before;
  for (const auto& a : addrs) owner_before[a] = owner(*last_, a);
  std::vector<topology::AllowKey> keys_before;
  for (const auto& k : edges)
    if (auto ak = key_of(k); ak && last_->allow.count(*ak)) keys_before.push_back(*ak);
  topology::patch(*last_, input(), state_.ids, addrs, edges);
  std::vector<topology::AllowKey> keys;
  for (const auto& k : edges)
    if (auto ak = key_of(k)) keys.push_back(*ak);
  // An address that changed owner (added, removed, moved) keeps no connection of its old life.
  std::set<IpAddr> moved;
  for (const auto& [a, was] : owner_before)
    if (owner(*last_, a) != was) moved.insert(a);
  ++counters_.applies;
  sweep_moved(moved);
  auto r = writer_->apply_patch(*last_, addrs, keys);
  if (!r) return failed(r.error());
  last_patched_ = addrs;
  accepted();
  std::set<topology::AllowKey> gone;
  for (const auto& k : keys_before)
    if (!last_->allow.count(k)) gone.insert(k);
  if (gone.empty() && moved.empty()) return;
  const auto& m = *last_;
  sweep([&](const FlowTuple& f) {
    if (topology::evaluate(m, f.src, f.dst, f.proto, port_of(f)) != topology::Verdict::alert_drop) return false;
    if (moved.count(f.src) || moved.count(f.dst)) return true;  // opened under the old owner's rules
    auto s = owner(m, f.src), d = owner(m, f.dst);
    for (const auto& k : gone)
      if (k.proto == static_cast<std::uint8_t>(f.proto) && k.port == port_of(f) && (!s || s == k.src) && (!d || d == k.dst))
        return true;
    return false;
  });
}

// Every connection of an address about to change owner goes *before* the commit that hands it over (as
// Calico Felix does): the new owner starts clean. After the commit only what the new rules forbid is swept,
// since a connection the new owner opens the moment its rules are in is its own and allowed.
void RulesetProgrammer::sweep_moved(const std::set<IpAddr>& moved) {
  if (moved.empty()) return;
  sweep([&](const FlowTuple& f) { return moved.count(f.src) || moved.count(f.dst); });
}

void RulesetProgrammer::sweep(const std::function<bool(const FlowTuple&)>& doomed) {
  if (!conntrack_delete_) return;
  auto n = conntrack_delete_(doomed);
  last_sweep_ = std::chrono::steady_clock::now();
  if (!n) {
    ++counters_.handler_errors;
    spdlog::warn("removing revoked connections failed: {}; they live until they close", n.error().message);
    return;
  }
  counters_.conntrack_deleted += *n;
  if (*n) spdlog::info("removed {} established connections that lost their permission", *n);
}

void RulesetProgrammer::accepted() {
  counters_.degraded = false;
  retry_delay_ = std::chrono::milliseconds(250);
  auto now = std::chrono::steady_clock::now();
  for (auto t : awaiting_) {
    event_to_enforced_ms_.push_back(std::chrono::duration<double, std::milli>(now - t).count());
    if (event_to_enforced_ms_.size() > 256) event_to_enforced_ms_.pop_front();
  }
  awaiting_.clear();
  on_applied_();  // ids may have been allocated: the state is dirty
}

void RulesetProgrammer::failed(const Error& e) {
  // The kernel state is unknown now: retry with a full reconcile, backing off, and say so (status,
  // /healthz 503, the metric) until it succeeds.
  ++counters_.apply_errors;
  counters_.degraded = true;
  full_ = true;
  reconcile_ = true;
  writer_->invalidate();
  spdlog::error("programming nftables failed: {}; retrying in {} ms", e.message, retry_delay_.count());
  retry_.expires_after(retry_delay_);
  retry_delay_ = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(kMaxRetryDelay), retry_delay_ * 2);
  retry_.async_wait([this](boost::system::error_code ec) {
    if (!ec) apply_now();
  });
}

void RulesetProgrammer::repair(const std::string& why) {
  if (!writer_ || !last_) return;  // nothing programmed yet: the first apply reconciles anyway
  ++counters_.ruleset_repairs;
  spdlog::error("ruleset tampering: {} (table {}); restoring it", why, cfg_.table);
  writer_->invalidate();
  reconcile_ = true;
  request_full();
}

void RulesetProgrammer::check_generation() {
  if (!writer_ || !last_ || reconcile_) return;
  // Notices lost since the last check: read back whatever the generation says. A change hidden by the
  // overrun may be followed by a commit of ours, which leaves the generation where we put it. This is
  // the only path an overrun takes (the monitor no longer repairs on it), so an overrun costs at most
  // one read-back per period and can never loop.
  const bool lost = watch_ && watch_->losses() != seen_losses_;
  if (!lost) {
    auto moved = writer_->changed_since_commit();
    if (!moved) {
      ++counters_.handler_errors;
      spdlog::warn("reading the nftables generation failed: {}; checking again in 10 s", moved.error().message);
      return;
    }
    if (!*moved) return;
    // Some table changed, and the monitor reports every foreign change to ours: another component's
    // churn costs no reconcile (a rebuilt bridge twin, reset counters).
    if (watch_) {
      writer_->acknowledge();
      return;
    }
  }
  if (watch_) seen_losses_ = watch_->losses();
  ++counters_.ruleset_read_backs;
  auto same = writer_->intact(*last_);
  if (same && *same) {
    writer_->acknowledge();
    return;
  }
  ++counters_.ruleset_checks;
  repair(same ? "the periodic check found our tables changed" : "our tables could not be read back: " + same.error().message);
}

void RulesetProgrammer::collect_ids(TimePoint now, std::chrono::seconds hold) {
  std::set<std::string> live;
  for (const auto& [w, unused] : endpoints_.workloads()) live.insert(w);
  for (const auto& n : endpoints_.external_networks()) live.insert(n.name);
  auto changed = state_.ids.collect(live, now, hold, topology::mark_capacity(cfg_.mark_mask));
  if (changed.empty()) return;
  // A full compile drops every element of the released ids in one transaction, before any reuse.
  counters_.ids_released += changed.size();
  spdlog::info("{} workload ids released or moved into the mark bits (no address for {}s, or overflowed; e.g. {})",
               changed.size(), hold.count(), changed.front());
  request_full();
  on_applied_();  // the id table changed: save it
}

}  // namespace topowall::agent
