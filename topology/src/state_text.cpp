// The state file's text written directly: state_to_json(s).dump() builds a JSON value of every edge first
// (a dozen allocations each), which for 100k edges took most of an import's time and memory.
#include <fmt/format.h>

#include "topowall/topology/schema.hpp"

namespace topowall::topology {

namespace {

using nlohmann::json;

// A JSON string. Names are plain ASCII (is_valid_name) and go as they are; anything else through the
// JSON library's escaping.
void append_string(std::string& out, const std::string& s) {
  bool plain = true;
  for (unsigned char c : s) plain = plain && c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  if (!plain) {
    out += json(s).dump();
    return;
  }
  out += '"';
  out += s;
  out += '"';
}

void append_edge(std::string& out, const EdgeKey& k, const EdgeInfo& e) {
  out += "{\"src\":";
  append_string(out, k.src);
  out += ",\"dst\":";
  append_string(out, k.dst);
  fmt::format_to(std::back_inserter(out), ",\"proto\":\"{}\",\"port\":{},\"state\":\"{}\",\"count\":{}", to_string(k.proto),
                 k.port, to_string(e.state), e.count);
  fmt::format_to(std::back_inserter(out), ",\"first_seen\":\"{}\",\"last_seen\":\"{}\"", format_time(e.first_seen),
                 format_time(e.last_seen));
  if (!e.comment.empty()) {
    out += ",\"comment\":";
    append_string(out, e.comment);
  }
  if (e.expires) fmt::format_to(std::back_inserter(out), ",\"expires\":\"{}\"", format_time(*e.expires));
  if (e.last_used) fmt::format_to(std::back_inserter(out), ",\"last_used\":\"{}\"", format_time(*e.last_used));
  out += '}';
}

// As state_to_json writes one (state_schema.cpp), without a JSON value per field: 100k of them took a
// quarter of a second each save (issue 16, cluster scale).
void append_remote(std::string& out, const ClusterEndpoint& e) {
  out += "{\"addresses\":[";
  for (std::size_t i = 0; i < e.addresses.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += e.addresses[i].to_string();
    out += '"';
  }
  out += "],\"id\":";
  append_string(out, e.id);
  out += ",\"name\":";
  append_string(out, e.name);
  out += ",\"node\":";
  append_string(out, e.node);
  out += ",\"workload\":";
  append_string(out, e.workload);
  out += '}';
}

}  // namespace

std::string state_to_text(const State& s) {
  std::vector<const ClusterEndpoint*> remote;
  remote.reserve(s.remote_endpoints.size());
  for (const auto& e : s.remote_endpoints) remote.push_back(&e);
  return state_to_text(s, remote);
}

std::string state_to_text(const State& s, const std::vector<const ClusterEndpoint*>& remote) {
  // Everything but the edges as a value (small: workloads, pending flows bounded by --max-pending, ids).
  State rest;
  rest.modes = s.modes;
  rest.learn_until = s.learn_until;
  rest.workload_learn_until = s.workload_learn_until;
  rest.ids = s.ids;
  // A copy of every field but the edges and the remote endpoints (written below): none may be lost.
  rest.graph.workloads() = s.graph.workloads();
  for (const auto& [k, p] : s.graph.pending()) rest.graph.restore_pending(k, p);
  rest.graph.set_next_pending_id(s.graph.next_pending_id());
  json doc = state_to_json(rest);
  std::string out;
  // An edge is about 200 bytes, a remote endpoint about 120: one allocation, no regrowth.
  out.reserve(s.graph.edges().size() * 240 + remote.size() * 160 + 4096);
  out += "{";
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it != doc.begin()) out += ',';
    append_string(out, it.key());
    out += ':';
    if (it.key() != "graph") {
      out += it->dump();
      continue;
    }
    out += "{\"edges\":[";
    bool first = true;
    s.graph.edges().for_each([&](const EdgeKey& k, const EdgeInfo& e) {
      if (!first) out += ',';
      first = false;
      append_edge(out, k, e);
    });
    out += "],\"version\":" + std::to_string(kGraphVersion) + ",\"workloads\":" + (*it)["workloads"].dump() + "}";
  }
  if (!remote.empty()) {
    out += ",\"remote_endpoints\":[";
    for (std::size_t i = 0; i < remote.size(); ++i) {
      if (i) out += ',';
      append_remote(out, *remote[i]);
    }
    out += ']';
  }
  out += "}\n";
  return out;
}

}  // namespace topowall::topology
