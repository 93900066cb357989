// The state file (topowall.state): what the agent saves and reads back at start, strictly checked.
#include <fmt/format.h>

#include "schema_fields.hpp"
#include "topowall/topology/identity.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::topology {

using nlohmann::json;
using namespace schema_fields;

namespace {
std::vector<ClusterEndpoint> remote_from_json(const json& rs) {
  if (!rs.is_array()) fail("$.remote_endpoints", "must be an array");
  std::vector<ClusterEndpoint> out;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const auto p = fmt::format("$.remote_endpoints[{}]", i);
    only_fields(rs[i], p, {"node", "id", "workload", "name", "addresses"});
    ClusterEndpoint e;
    const std::pair<const char*, std::string*> fields[] = {
        {"node", &e.node}, {"id", &e.id}, {"workload", &e.workload}, {"name", &e.name}};
    for (auto [field, out_field] : fields) {
      const auto& v = need(rs[i], p, field);
      if (!v.is_string()) fail(p + "." + field, "must be a string");
      *out_field = v.get<std::string>();
    }
    if (!is_valid_name(e.node) || !is_valid_name(e.workload)) fail(p, "invalid node or workload name");
    const auto& as = need(rs[i], p, "addresses");
    if (!as.is_array()) fail(p + ".addresses", "must be an array");
    for (const auto& a : as) {
      auto ip = a.is_string() ? IpAddr::parse(a.get<std::string>()) : std::nullopt;
      if (!ip) fail(p + ".addresses", a.dump() + " is not an IP address");
      e.addresses.push_back(*ip);
    }
    out.push_back(std::move(e));
  }
  return out;
}
}  // namespace

json state_to_json(const State& s) {
  json overrides = json::object();
  for (const auto& [w, m] : s.modes.overrides) overrides[w] = to_string(m);
  json pending = json::array();
  for (const auto& [k, p] : s.graph.pending()) {
    json o = key_fields(k);
    o["id"] = p.id;
    o["count"] = p.count;
    o["first_seen"] = format_time(p.first_seen);
    o["last_seen"] = format_time(p.last_seen);
    if (!p.reason.empty()) o["reason"] = p.reason;
    pending.push_back(std::move(o));
  }
  json j{{"schema", "topowall.state"},
         {"version", kStateVersion},
         {"mode", to_string(s.modes.global)},
         {"mode_overrides", std::move(overrides)},
         {"graph", graph_to_json(s.graph)},
         {"pending", std::move(pending)},
         {"next_pending_id", s.graph.next_pending_id()},
         {"workload_ids", s.ids.all()},
         {"next_workload_id", s.ids.next()}};
  if (s.learn_until) j["learn_until"] = format_time(*s.learn_until);
  json windows = json::object();
  for (const auto& [w, t] : s.workload_learn_until) windows[w] = format_time(t);
  j["workload_learn_until"] = windows;
  if (!s.remote_endpoints.empty()) {
    json remote = json::array();
    for (const auto& e : s.remote_endpoints) {
      json addrs = json::array();
      for (const auto& a : e.addresses) addrs.push_back(a.to_string());
      remote.push_back({{"node", e.node}, {"id", e.id}, {"workload", e.workload}, {"name", e.name}, {"addresses", addrs}});
    }
    j["remote_endpoints"] = std::move(remote);
  }
  return j;
}

namespace {

// An object keyed by workload name: `read(name, object, path)` turns each entry into what the state holds
// (the object and its path, so get_time and get_uint can name the entry that was wrong).
template <typename F>
void each_named(const json& j, const char* key, F&& read) {
  if (!j.contains(key)) return;
  const auto& o = j[key];
  const std::string path = std::string("$.") + key;
  if (!o.is_object()) fail(path, "must be an object");
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (!is_valid_name(it.key())) fail(path + "." + it.key(), "invalid workload name");
    read(it.key(), o, path);
  }
}

std::optional<Mode> mode_of(const json& v) { return v.is_string() ? parse_mode(v.get<std::string>()) : std::nullopt; }

void read_modes(const json& j, State& s) {
  auto global = mode_of(need(j, "$", "mode"));
  if (!global) fail("$.mode", "must be learn, monitor or enforce");
  s.modes.global = *global;
  each_named(j, "mode_overrides", [&](const std::string& w, const json& o, const std::string& path) {
    auto m = mode_of(o[w]);
    if (!m) fail(path + "." + w, "must be learn, monitor or enforce");
    s.modes.overrides[w] = *m;
  });
  if (j.contains("learn_until")) s.learn_until = get_time(j, "$", "learn_until");
  each_named(j, "workload_learn_until", [&](const std::string& w, const json& o, const std::string& path) {
    s.workload_learn_until[w] = get_time(o, path, w.c_str());
  });
}

void read_pending(const json& j, State& s) {
  if (j.contains("pending")) {
    const auto& ps = j["pending"];
    if (!ps.is_array()) fail("$.pending", "must be an array");
    for (std::size_t i = 0; i < ps.size(); ++i) {
      auto p = fmt::format("$.pending[{}]", i);
      only_fields(ps[i], p, {"src", "dst", "proto", "port", "id", "count", "first_seen", "last_seen", "reason"});
      PendingFlow f;
      f.id = get_uint(ps[i], p, "id", UINT64_MAX);
      f.count = get_uint(ps[i], p, "count", UINT64_MAX);
      f.first_seen = get_time(ps[i], p, "first_seen");
      f.last_seen = get_time(ps[i], p, "last_seen");
      if (ps[i].contains("reason")) {
        const auto& r = ps[i]["reason"];
        if (!r.is_string() || r.get<std::string>().size() > 32) fail(p + ".reason", "must be a short string");
        f.reason = r.get<std::string>();
      }
      s.graph.restore_pending(get_key(ps[i], p), f);
    }
  }
  // Never hand out an id a restored flow holds, whatever the file says.
  std::uint64_t next = j.contains("next_pending_id") ? get_uint(j, "$", "next_pending_id", UINT64_MAX) : 1;
  for (const auto& [k, p] : s.graph.pending()) next = std::max(next, p.id + 1);
  s.graph.set_next_pending_id(next);
}

void read_ids(const json& j, State& s) {
  std::map<std::string, std::uint32_t> ids;
  each_named(j, "workload_ids", [&](const std::string& w, const json& o, const std::string& path) {
    ids[w] = static_cast<std::uint32_t>(get_uint(o, path, w.c_str(), UINT32_MAX));
  });
  auto next_id = j.contains("next_workload_id") ? get_uint(j, "$", "next_workload_id", UINT32_MAX) : 0;
  s.ids.restore(std::move(ids), static_cast<std::uint32_t>(next_id));
}

}  // namespace

Result<State> state_from_json(const json& j) {
  try {
    only_fields(j, "$", {"schema", "version", "mode", "mode_overrides", "graph", "pending", "next_pending_id",
                         "learn_until", "workload_ids", "next_workload_id", "workload_learn_until", "remote_endpoints"});
    if (need(j, "$", "schema") != "topowall.state") fail("$.schema", "not a topowall state file");
    auto v = get_uint(j, "$", "version", 1000);
    if (v != kStateVersion)
      fail("$.version", fmt::format("state version {} is not supported by this agent (reads {})", v, kStateVersion));
    State s;
    auto g = graph_from_json(need(j, "$", "graph"));
    if (!g) fail("$.graph", g.error().message);
    s.graph = std::move(*g);
    read_modes(j, s);
    read_pending(j, s);
    read_ids(j, s);
    if (j.contains("remote_endpoints")) s.remote_endpoints = remote_from_json(j["remote_endpoints"]);
    return s;
  } catch (const Fail& f) {
    return Error{f.msg};
  } catch (const json::exception& e) {
    return Error{std::string("malformed state: ") + e.what()};
  }
}

}  // namespace topowall::topology
