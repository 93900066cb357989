#include "agent/flow_history.hpp"

#include <spdlog/spdlog.h>

#include "agent/control_api.hpp"
#include "agent/graph_transfer.hpp"
#include "agent/params.hpp"
#include "control/server.hpp"
#include "topowall/topology/replay.hpp"
#include "topowall/topology/usage.hpp"

namespace topowall::agent {

using nlohmann::json;

namespace {

json key_json(const topology::EdgeKey& k) {
  return {{"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)}, {"port", k.port}};
}

std::optional<topology::EdgeKey> key_param(const json& e) {
  if (!e.is_object() || !e.contains("src") || !e["src"].is_string() || !e.contains("dst") || !e["dst"].is_string())
    return std::nullopt;
  auto pp = proto_port(e);
  if (!pp) return std::nullopt;
  return topology::EdgeKey{e["src"].get<std::string>(), e["dst"].get<std::string>(), pp->first, pp->second};
}

constexpr const char* kUnusedFor = "needs unused_for_seconds: a period of at most 100 years (e.g. 2592000 for 30d)";

}  // namespace

FlowHistory::FlowHistory(const HistoryConfig& cfg, topology::State& state, const TimeSource& time)
    : cfg_(cfg), state_(state), time_(time) {}

void FlowHistory::open() {
  if (cfg_.journal_path.empty()) return;
  auto j = std::make_unique<FlowJournal>(cfg_.journal_path, cfg_.journal_max_bytes);
  if (auto st = j->open(); !st) {
    ++failed_open_.write_errors;
    spdlog::error("flow journal off: {}; `topowall replay` has nothing to replay until it opens (fix the state "
                  "directory and restart)", st.error().message);
    return;
  }
  journal_ = std::move(j);
  spdlog::info("flow journal {}: {} bytes (at most {})", cfg_.journal_path, journal_->bytes(), cfg_.journal_max_bytes);
}

const JournalCounters& FlowHistory::journal_counters() const { return journal_ ? journal_->counters() : failed_open_; }

void FlowHistory::on_flow(const topology::EdgeKey& k, bool resync) {
  const auto now = time_.now();
  (void)topology::note_used(state_.graph, k, now);  // false: not an edge (yet): nothing to stamp
  if (!resync && journal_) buckets_.add(k, topology::FlowVerdict::allowed, now);
}

void FlowHistory::on_used(const topology::EdgeKey& k, std::uint64_t n) {
  const auto now = time_.now();
  (void)topology::note_used(state_.graph, k, now);  // false: the edge went since the read: nothing to stamp
  if (journal_) buckets_.add(k, topology::FlowVerdict::allowed, now, static_cast<std::uint32_t>(std::min<std::uint64_t>(n, UINT32_MAX)));
}

void FlowHistory::on_blocked(const topology::EdgeKey& k, TimePoint when) {
  if (journal_) buckets_.add(k, topology::FlowVerdict::blocked, when);
}

void FlowHistory::flush(bool everything) {
  if (!journal_) return;
  auto records = buckets_.take(time_.now(), everything);
  if (records.empty()) return;
  if (auto st = journal_->append(records); !st)  // counted in the journal's write_errors
    spdlog::error("flow journal: {} records lost: {}", records.size(), st.error().message);
}

json FlowHistory::stale(const json& params) {
  const auto period = seconds_param(params, "unused_for_seconds");
  if (!period.valid || !period.value) return control::error_response("bad_params", kUnusedFor);
  // No conntrack dump here (a reader may ask often): an edge with only a long-lived connection may be listed,
  // and prune, which dumps first, keeps it.
  const auto now = time_.now();
  auto edges = topology::stale_edges(state_.graph, now, *period.value);
  json list = json::array();
  for (std::size_t i = 0; i < edges.size() && i < kMaxListed; ++i) {
    auto o = key_json(edges[i].key);
    o["state"] = to_string(edges[i].state);
    o["last_used"] = topology::format_time(edges[i].last_use);
    list.push_back(std::move(o));
  }
  return ok(json{{"unused_for_seconds", period.value->count()}, {"edges", std::move(list)},
                          {"stale", edges.size()}, {"omitted", edges.size() - std::min(edges.size(), kMaxListed)}});
}

Reply FlowHistory::prune(const json& params) {
  const auto period = seconds_param(params, "unused_for_seconds");
  if (!period.valid || !period.value) return Reply::fail("bad_params", kUnusedFor);
  auto it = params.find("edges");
  if (it == params.end() || !it->is_array() || it->size() > kMaxListed)
    return Reply::fail("bad_params", "needs edges: the stale edges to remove, as edges.stale listed them (at most 5000)");
  std::vector<topology::EdgeKey> keys;
  for (const auto& e : *it) {
    auto k = key_param(e);
    if (!k) return Reply::fail("bad_params", "each of edges needs src, dst, proto and port");
    keys.push_back(std::move(*k));
  }
  refresh_();
  const auto now = time_.now();
  json removed = json::array(), kept = json::array();
  for (const auto& k : keys) {
    // Checked again now: traffic since the listing (or since the operator confirmed) keeps the edge.
    const auto e = state_.graph.find(k);
    if (!e || !topology::is_stale(*e, now, *period.value)) {
      kept.push_back({{"edge", k.to_string()}, {"reason", e ? "used within the period" : "no such edge"}});
      continue;
    }
    auto r = remove_(k);
    if (r.error) kept.push_back({{"edge", k.to_string()}, {"reason", r.body.dump()}});
    else removed.push_back(k.to_string());
  }
  if (!removed.empty()) spdlog::info("pruned {} edges unused for {}s", removed.size(), period.value->count());
  return Reply{json{{"removed", std::move(removed)}, {"kept", std::move(kept)}}};
}

std::optional<topology::Graph> FlowHistory::replay_graph(const json& params, int passed_fd, json& refusal) const {
  const auto from_fd = params.find("fd");
  if (from_fd != params.end() && *from_fd == true) {
    GraphReadError why;
    auto g = read_graph_fd(passed_fd, cfg_.max_import_bytes, why);
    if (!g) refusal = control::error_response(why.code, why.message);
    return g ? std::optional<topology::Graph>(std::move(*g)) : std::nullopt;
  }
  // The live graph, plus the pending flows the operator proposes to approve.
  topology::Graph g = state_.graph;
  auto ids = params.find("approve");
  if (ids == params.end()) return g;
  if (!ids->is_array()) {
    refusal = control::error_response("bad_params", "approve must be an array of pending flow ids");
    return std::nullopt;
  }
  for (const auto& i : *ids) {
    auto id = as_uint(i);
    const topology::EdgeKey* found = nullptr;
    for (const auto& [k, p] : state_.graph.pending())
      if (id && p.id == *id) found = &k;
    if (!found) {
      refusal = control::error_response("not_found", "no pending flow with id " + i.dump() + " (see `topowall flows pending`)");
      return std::nullopt;
    }
    g.observe(*found, time_.now(), 0, topology::EdgeState::approved);
  }
  return g;
}

json FlowHistory::replay(const json& params, int passed_fd) {
  if (!journal_)
    return control::error_response("unavailable", "the flow journal is off (no state directory for it, or it failed to "
                                                  "open: see the agent's log)");
  const auto since = seconds_param(params, "since_seconds");
  if (!since.valid) return control::error_response("bad_params", "since_seconds must be at most 100 years");
  const auto limit = uint_param(params, "limit").value_or(1000);
  json refusal;
  auto g = replay_graph(params, passed_fd, refusal);
  if (!g) return refusal;
  flush(true);  // this minute's flows too
  const auto now = time_.now();
  const auto window = since.value.value_or(std::chrono::hours(24));
  const auto from = window >= now.time_since_epoch() ? TimePoint{} : now - window;
  topology::Replay replay(*g, topology::minute_of(from));
  if (auto st = journal_->read([&](const topology::JournalRecord& r) { replay.add(r); }); !st)
    return control::error_response("io", "reading the flow journal: " + st.error().message);
  auto answer = topology::replay_to_json(replay.result(), std::min<std::uint64_t>(limit, kMaxListed));
  answer["since"] = topology::format_time(topology::minute_start(topology::minute_of(from)));
  return ok(std::move(answer));
}

}  // namespace topowall::agent
