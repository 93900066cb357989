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

}  // namespace

std::string state_to_text(const State& s) {
  // Everything but the edges as a value (small: workloads, pending flows bounded by --max-pending, ids).
  State rest;
  rest.modes = s.modes;
  rest.learn_until = s.learn_until;
  rest.workload_learn_until = s.workload_learn_until;
  rest.ids = s.ids;
  rest.remote_endpoints = s.remote_endpoints;  // a copy of every field but the edges: none may be lost
  rest.graph.workloads() = s.graph.workloads();
  for (const auto& [k, p] : s.graph.pending()) rest.graph.restore_pending(k, p);
  rest.graph.set_next_pending_id(s.graph.next_pending_id());
  json doc = state_to_json(rest);
  std::string out;
  out.reserve(s.graph.edges().size() * 240 + 4096);  // an edge is about 200 bytes: one allocation, no regrowth
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
  out += "}\n";
  return out;
}

}  // namespace topowall::topology
