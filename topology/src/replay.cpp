#include "topowall/topology/replay.hpp"

#include <algorithm>

#include "topowall/topology/schema.hpp"

namespace topowall::topology {

bool graph_allows(const Graph& g, const EdgeKey& k, TimePoint at) {
  const auto e = g.find(k);
  if (!e || e->state == EdgeState::denied) return false;
  return !e->expires || *e->expires > at;
}

void Replay::add(const JournalRecord& r) {
  if (r.minute < from_) return;
  ++records_;
  auto& group = graph_allows(graph_, r.key, minute_start(r.minute)) ? allowed_ : blocked_;
  auto [it, fresh] = group.try_emplace(r.key);
  auto& e = it->second;
  if (fresh) {
    e.key = r.key;
    e.first_minute = e.last_minute = r.minute;
  }
  e.flows += r.count;
  if (r.verdict == FlowVerdict::blocked) e.recorded_blocked += r.count;
  e.first_minute = std::min(e.first_minute, r.minute);
  e.last_minute = std::max(e.last_minute, r.minute);
}

ReplayResult Replay::result() const {
  ReplayResult out;
  out.records = records_;
  auto fill = [](const std::map<EdgeKey, ReplayEdge>& from, std::vector<ReplayEdge>& to, std::uint64_t& total) {
    for (const auto& [k, e] : from) {
      to.push_back(e);
      total += e.flows;
    }
    std::stable_sort(to.begin(), to.end(), [](const auto& a, const auto& b) { return a.flows > b.flows; });
  };
  fill(allowed_, out.allowed, out.allowed_flows);
  fill(blocked_, out.blocked, out.blocked_flows);
  return out;
}

nlohmann::json replay_to_json(const ReplayResult& r, std::size_t max_edges) {
  auto group = [max_edges](const std::vector<ReplayEdge>& edges, std::uint64_t flows) {
    nlohmann::json list = nlohmann::json::array();
    for (std::size_t i = 0; i < edges.size() && i < max_edges; ++i) {
      const auto& e = edges[i];
      list.push_back({{"src", e.key.src}, {"dst", e.key.dst}, {"proto", to_string(e.key.proto)}, {"port", e.key.port},
                      {"flows", e.flows}, {"recorded_blocked", e.recorded_blocked},
                      {"first", format_time(minute_start(e.first_minute))},
                      {"last", format_time(minute_start(e.last_minute))}});
    }
    return nlohmann::json{{"flows", flows}, {"edges", std::move(list)},
                          {"omitted", edges.size() > max_edges ? edges.size() - max_edges : 0}};
  };
  return {{"records", r.records}, {"allowed", group(r.allowed, r.allowed_flows)},
          {"blocked", group(r.blocked, r.blocked_flows)}};
}

}  // namespace topowall::topology
