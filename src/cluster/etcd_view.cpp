// The reading half of the etcd store: the full read, the watch's events, and the checks every value
// from another node passes (its key's node, its node's ranges) before the agent sees it.
#include <spdlog/spdlog.h>

#include <limits>

#include "cluster/etcd_codec.hpp"
#include "cluster/etcd_store.hpp"

namespace topowall::cluster {

using nlohmann::json;

namespace {

// The revision after an answer's header.revision; 0 (watch from now) when etcd left it out. A const
// json's operator[] on a missing key is undefined behaviour, hence find.
long long next_revision(const json& r) {
  auto h = r.find("header");
  if (h == r.end() || !h->is_object()) return 0;
  const auto rev = etcd_int(h->value("revision", json(0)));
  return rev > 0 && rev < std::numeric_limits<long long>::max() ? rev + 1 : 0;
}
bool starts(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

// Only a node speaks for itself: the node and id in a value must be those of its key (which etcd's RBAC
// lets only that node write). Anything else is ignored and counted.
std::optional<ClusterEndpoint> EtcdStore::decode_kv(const std::string& key, const json& kv) {
  auto e = decode_endpoint(base64_decode(kv.value("value", "")));
  if (!e) {
    ++stats_.errors;  // another node's bad write must not stop this one
    spdlog::warn("cluster: ignoring {}: {}", key, e.error().message);
    return std::nullopt;
  }
  const auto rest = key.substr(endpoints().size());
  const auto slash = rest.find('/');
  const auto node = rest.substr(0, slash), id = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (e->node == node && e->id == id) return *e;
  ++stats_.values_refused;
  spdlog::warn("cluster: ignoring {}: its value speaks for node '{}' endpoint '{}'; a node may only write its own",
               key, e->node, e->id);
  return std::nullopt;
}

void EtcdStore::on_ranges_kv(const std::string& key, const json* kv) {
  const auto node = key.substr(ranges_prefix().size());
  if (!kv) {
    ranges_.erase(node);
    return;
  }
  auto a = decode_ranges(base64_decode(kv->value("value", "")));
  if (!a) {
    ++stats_.errors;
    spdlog::warn("cluster: ignoring {}: {}", key, a.error().message);
    ranges_.erase(node);
    return;
  }
  if (a->node != node) {
    ++stats_.values_refused;
    spdlog::warn("cluster: ignoring {}: it announces ranges for node '{}'; a node may only announce its own", key, a->node);
    ranges_.erase(node);
    return;
  }
  ranges_.set(node, std::move(a->ranges), etcd_int(kv->value("create_revision", json("0"))));
}

void EtcdStore::settle_ranges() {
  for (const auto& r : ranges_.settle()) {
    ++stats_.ranges_refused;
    spdlog::warn("cluster: node {} announces {}, which overlaps {} that node {} announced first: refused (its claims "
                 "there are ignored)",
                 r.node, r.range.to_string(), r.owner_range.to_string(), r.owner);
  }
}

// The endpoint as the agent may believe it: only the addresses inside its node's ranges.
ClusterEndpoint EtcdStore::within_ranges(const std::string& key, const ClusterEndpoint& e) {
  auto out = e;
  out.addresses.clear();
  for (const auto& a : e.addresses) {
    if (ranges_.allows(e.node, a)) {
      out.addresses.push_back(a);
      continue;
    }
    if (refused_claims_.insert({key, a}).second) {
      ++stats_.claims_refused;
      spdlog::warn("cluster: node {} claims {} for workload {}, outside the ranges it announced: ignored", e.node,
                   a.to_string(), e.workload);
    }
  }
  return out;
}

// Ranges changed: every claim is judged again, and what the agent holds follows.
void EtcdStore::refilter() {
  for (const auto& [k, e] : claimed_) {
    auto f = within_ranges(k, e);
    auto it = remote_.find(k);
    if (it != remote_.end() && it->second == f) continue;
    remote_[k] = f;
    handler_(ClusterEvent{ClusterEvent::Kind::upsert, f});
  }
}

void EtcdStore::on_endpoint_kv(const std::string& key, const json* kv) {
  std::optional<ClusterEndpoint> e;
  if (kv) e = decode_kv(key, *kv);
  if (!e) {  // deleted, or overwritten with something unusable: the old claim goes either way
    claimed_.erase(key);
    std::erase_if(refused_claims_, [&](const auto& p) { return p.first == key; });
    if (auto it = remote_.find(key); it != remote_.end()) {
      auto gone = it->second;
      remote_.erase(it);
      handler_(ClusterEvent{ClusterEvent::Kind::remove, gone});
    }
    return;
  }
  claimed_[key] = *e;
  auto f = within_ranges(key, *e);
  remote_[key] = f;
  handler_(ClusterEvent{ClusterEvent::Kind::upsert, f});
}

void EtcdStore::on_decision_kv(const std::string& key, const json& kv) {
  auto d = decode_decision(base64_decode(kv.value("value", "")));
  if (!d) {
    ++stats_.errors;
    spdlog::warn("cluster: ignoring {}: {}", key, d.error().message);
    return;
  }
  if (d->node == opts_.node) return;  // made here, applied here already
  ClusterEvent ev;
  ev.kind = ClusterEvent::Kind::decision;
  ev.decision = *d;
  handler_(ev);
}

void EtcdStore::on_range(const json& r) {
  const auto gen = generation_;
  const auto mine = endpoints() + opts_.node + "/";
  // Pointers into `r`, never copies: at 100k endpoints each copy of the read was about 150 MB of peak RSS.
  std::vector<std::pair<std::string, const json*>> decided, claims;
  ranges_.clear();
  static const json kNone = json::array();
  const auto it = r.find("kvs");
  for (const auto& kv : it != r.end() && it->is_array() ? *it : kNone) {
    auto k = base64_decode(kv.value("key", ""));
    if (starts(k, decisions())) decided.emplace_back(k, &kv);
    else if (starts(k, ranges_prefix())) {
      if (k == ranges_key() && opts_.ranges.empty())  // announced before, no longer
        request("/v3/kv/deleterange", {{"key", base64_encode(k)}}, [](Result<json>) {});
      else on_ranges_kv(k, &kv);
    } else if (starts(k, mine)) {
      // Ours from before (a restart, or a withdraw lost while disconnected): drop what is no longer here.
      if (!local_.count(k.substr(mine.size())))
        request("/v3/kv/deleterange", {{"key", base64_encode(k)}}, [](Result<json>) {});
    } else if (starts(k, endpoints())) claims.emplace_back(k, &kv);
  }
  settle_ranges();
  put_ranges();
  for (const auto& [id, e] : local_) put(e);  // under the new lease
  std::map<std::string, ClusterEndpoint> seen;
  for (const auto& [k, kv] : claims)
    if (auto e = decode_kv(k, *kv)) seen[k] = std::move(*e);
  if (stats_.resyncs++ > 0)  // a re-read: what vanished meanwhile goes
    for (const auto& [k, e] : remote_)
      if (!seen.count(k)) handler_(ClusterEvent{ClusterEvent::Kind::remove, e});
  claimed_ = std::move(seen);
  remote_.clear();
  for (const auto& [k, e] : claimed_) {
    remote_[k] = within_ranges(k, e);
    handler_(ClusterEvent{ClusterEvent::Kind::upsert, remote_[k]});
  }
  for (const auto& [k, kv] : decided) on_decision_kv(k, *kv);  // idempotent: replayed on every (re)connect
  for (const auto& d : unsent_) write_decision(d);
  unsent_.clear();
  handler_(ClusterEvent{ClusterEvent::Kind::synced, {}, {}});
  if (gen != generation_) return;
  start_watch(next_revision(r));
  keepalive();
}

void EtcdStore::on_watch_message(const json& m) {
  const auto& res = m.contains("result") ? m["result"] : m;
  if (res.contains("error")) {  // e.g. the token no longer valid: read everything again
    fail("etcd ended the watch: " + res["error"].dump());
    return;
  }
  if (res.value("canceled", false) || res.contains("compact_revision")) {
    fail("etcd cancelled the watch (compaction, or permission)");
    return;
  }
  if (res.value("created", false)) {
    stats_.connected = true;
    backoff_ = std::chrono::milliseconds(500);
  }
  const auto mine = endpoints() + opts_.node + "/";
  bool ranges_changed = false;
  static const json kNoEvents = json::array(), kNoKv = json::object();
  const auto evs = res.find("events");
  for (const auto& ev : evs != res.end() && evs->is_array() ? *evs : kNoEvents) {
    const auto kvi = ev.is_object() ? ev.find("kv") : ev.end();
    const auto& kv = kvi != ev.end() && kvi->is_object() ? *kvi : kNoKv;  // a reference, not a copy per event
    auto k = base64_decode(kv.value("key", ""));
    const bool deleted = ev.value("type", "PUT") == "DELETE";
    if (starts(k, decisions())) {
      ++stats_.events;
      if (!deleted) on_decision_kv(k, kv);
    } else if (starts(k, ranges_prefix())) {
      // Settled at once: a claim later in this same message is judged by the ranges announced before it.
      on_ranges_kv(k, deleted ? nullptr : &kv);
      settle_ranges();
      ranges_changed = true;
    } else if (starts(k, endpoints()) && !starts(k, mine)) {
      ++stats_.events;
      on_endpoint_kv(k, deleted ? nullptr : &kv);
    }
  }
  if (ranges_changed) refilter();
}

}  // namespace topowall::cluster
