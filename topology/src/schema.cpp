#include "topowall/topology/schema.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <set>

#include "schema_fields.hpp"
#include "topowall/topology/identity.hpp"

namespace topowall::topology {

using nlohmann::json;

namespace schema_fields {

void fail(const std::string& path, const std::string& why) { throw Fail{path + ": " + why}; }

void only_fields(const json& o, const std::string& path, std::initializer_list<const char*> allowed) {
  if (!o.is_object()) fail(path, "must be an object");
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool known = false;
    for (auto* a : allowed) known = known || it.key() == a;
    if (!known) fail(path + "." + it.key(), "unknown field");
  }
}

const json& need(const json& o, const std::string& path, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) fail(path + "." + key, "missing");
  return *it;
}

std::string get_name(const json& o, const std::string& path, const char* key) {
  const auto& v = need(o, path, key);
  if (!v.is_string()) fail(path + "." + key, "must be a string");
  auto s = v.get<std::string>();
  if (!is_valid_name(s))
    fail(path + "." + key, "invalid name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)");
  return s;
}

TimePoint get_time(const json& o, const std::string& path, const char* key) {
  const auto& v = need(o, path, key);
  if (!v.is_string()) fail(path + "." + key, "must be an RFC 3339 time string");
  auto t = parse_time(v.get<std::string>());
  if (!t) fail(path + "." + key, "not an RFC 3339 UTC time like 2026-01-02T03:04:05Z");
  return *t;
}

std::uint64_t get_uint(const json& o, const std::string& path, const char* key, std::uint64_t max) {
  const auto& v = need(o, path, key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<long long>() >= 0))
    fail(path + "." + key, "must be a non-negative integer");
  auto n = v.get<std::uint64_t>();
  if (n > max) fail(path + "." + key, fmt::format("must be at most {}", max));
  return n;
}

EdgeKey get_key(const json& e, const std::string& p) {
  EdgeKey k;
  k.src = get_name(e, p, "src");
  k.dst = get_name(e, p, "dst");
  const auto& pr = need(e, p, "proto");
  if (!pr.is_string() || !parse_proto(pr.get<std::string>()))
    fail(p + ".proto", "must be one of tcp, udp, sctp, icmp, icmpv6");
  k.proto = *parse_proto(pr.get<std::string>());
  k.port = static_cast<std::uint16_t>(get_uint(e, p, "port", is_icmp(k.proto) ? 255 : 65535));
  if (!is_icmp(k.proto) && k.port == 0) fail(p + ".port", "must be 1-65535 for " + std::string(to_string(k.proto)));
  return k;
}

json key_fields(const EdgeKey& k) {
  return json{{"src", k.src}, {"dst", k.dst}, {"proto", to_string(k.proto)}, {"port", k.port}};
}

}  // namespace schema_fields

using namespace schema_fields;

namespace {

// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

std::map<std::string, std::string> get_labels(const json& o, const std::string& path) {
  std::map<std::string, std::string> out;
  auto it = o.find("labels");
  if (it == o.end()) return out;
  if (!it->is_object()) fail(path + ".labels", "must be an object of strings");
  if (it->size() > 256) fail(path + ".labels", "too many labels (max 256)");
  for (auto l = it->begin(); l != it->end(); ++l) {
    if (!l->is_string()) fail(path + ".labels." + l.key(), "must be a string");
    if (l.key().size() > 253 || l->get<std::string>().size() > 1024)
      fail(path + ".labels." + l.key(), "too long");
    out[l.key()] = l->get<std::string>();
  }
  return out;
}

void parse_workload(Graph& g, const json& w, const std::string& p) {
  only_fields(w, p, {"name", "labels", "first_seen", "replicas"});
  auto name = get_name(w, p, "name");
  if (g.workloads().count(name)) fail(p + ".name", "duplicate workload '" + name + "'");
  auto& rec = g.workloads()[name];
  rec.labels = get_labels(w, p);
  if (w.contains("first_seen")) rec.first_seen = get_time(w, p, "first_seen");
}

void parse_edge(Graph& g, const json& e, const std::string& p) {
  only_fields(e, p, {"src", "dst", "proto", "port", "state", "count", "first_seen", "last_seen", "comment", "expires",
                  "last_used"});
  auto k = get_key(e, p);
  if (g.edges().count(k)) fail(p, "duplicate edge " + k.to_string());
  EdgeInfo info;
  const auto& st = need(e, p, "state");
  if (!st.is_string() || !parse_edge_state(st.get<std::string>()))
    fail(p + ".state", "must be one of learned, approved, denied");
  info.state = *parse_edge_state(st.get<std::string>());
  info.count = e.contains("count") ? get_uint(e, p, "count", UINT64_MAX) : 0;
  if (e.contains("first_seen")) info.first_seen = get_time(e, p, "first_seen");
  if (e.contains("last_seen")) info.last_seen = get_time(e, p, "last_seen");
  if (e.contains("expires")) info.expires = get_time(e, p, "expires");
  if (e.contains("last_used")) info.last_used = get_time(e, p, "last_used");
  if (e.contains("comment")) {
    const auto& c = e["comment"];
    if (!c.is_string() || c.get<std::string>().size() > 1024) fail(p + ".comment", "must be a string of at most 1024 bytes");
    info.comment = c.get<std::string>();
  }
  g.edges().set(k, info);
}

void check_version(const json& j) {
  auto v = get_uint(j, "$", "version", 1000);
  if (v != static_cast<std::uint64_t>(kGraphVersion))
    fail("$.version", fmt::format("unsupported version {} (this agent reads {})", v, kGraphVersion));
}

Graph parse_graph(const json& j) {
  only_fields(j, "$", {"version", "workloads", "edges"});
  check_version(j);
  Graph g;
  const auto& ws = need(j, "$", "workloads");
  if (!ws.is_array()) fail("$.workloads", "must be an array");
  for (std::size_t i = 0; i < ws.size(); ++i) parse_workload(g, ws[i], fmt::format("$.workloads[{}]", i));
  const auto& es = need(j, "$", "edges");
  if (!es.is_array()) fail("$.edges", "must be an array");
  for (std::size_t i = 0; i < es.size(); ++i) parse_edge(g, es[i], fmt::format("$.edges[{}]", i));
  return g;
}

// A thrown Fail as a Status, for the element-wise readers of graph_stream.cpp.
template <typename F>
Status as_status(F&& f) {
  try {
    f();
    return ok_status();
  } catch (const Fail& e) {
    return Error{e.msg};
  } catch (const json::exception& e) {
    return Error{std::string("malformed graph: ") + e.what()};
  }
}

}  // namespace

namespace detail {
Status add_workload(Graph& g, const json& w, const std::string& path) {
  return as_status([&] { parse_workload(g, w, path); });
}
Status add_edge(Graph& g, const json& e, const std::string& path) {
  return as_status([&] { parse_edge(g, e, path); });
}
Status check_graph_version(const json& top) {
  return as_status([&] { check_version(top); });
}
}  // namespace detail

std::string format_time(TimePoint t) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  if (ms < 0 && ms % 1000) --secs;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(((ms % 1000) + 1000) % 1000));
  return buf;
}

std::optional<TimePoint> parse_time(std::string_view s) {
  int y, mo, d, h, mi, sec, n = 0;
  std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  // The clock counts nanoseconds in 64 bits (years 1677-2262), and the agent subtracts these times from
  // now: a year outside 1970-2200 overflowed that arithmetic (undefined behaviour, found by fuzz_graph).
  if (y < kMinYear || y > kMaxYear) return std::nullopt;
  std::string_view rest = s.substr(19);
  int millis = 0;
  if (!rest.empty() && rest[0] == '.') {
    std::size_t i = 1, digits = 0;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      if (digits < 3) millis = millis * 10 + (rest[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (std::size_t k = digits; k < 3; ++k) millis *= 10;
    rest = rest.substr(i);
  }
  if (rest != "Z") return std::nullopt;
  long days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  auto total = std::chrono::seconds(days * 86400L + h * 3600L + mi * 60L + sec) + std::chrono::milliseconds(millis);
  return TimePoint(std::chrono::duration_cast<Clock::duration>(total));
}

json workload_to_json(const std::string& name, const Graph& g, const EndpointTable* live) {
  json w{{"name", name}};
  if (auto it = g.workloads().find(name); it != g.workloads().end()) {
    w["labels"] = it->second.labels;
    w["first_seen"] = format_time(it->second.first_seen);
  } else {
    w["labels"] = json::object();
  }
  if (live) {
    auto it = live->workloads().find(name);
    w["replicas"] = it == live->workloads().end() ? 0 : it->second.size();
  }
  return w;
}

json edge_to_json(const EdgeKey& k, const EdgeInfo& e) {
  json o = key_fields(k);
  o["state"] = to_string(e.state);
  o["count"] = e.count;
  o["first_seen"] = format_time(e.first_seen);
  o["last_seen"] = format_time(e.last_seen);
  if (!e.comment.empty()) o["comment"] = e.comment;
  if (e.expires) o["expires"] = format_time(*e.expires);
  if (e.last_used) o["last_used"] = format_time(*e.last_used);
  return o;
}

json graph_to_json(const Graph& g, const EndpointTable* live) {
  json ws = json::array();
  std::set<std::string> names;
  for (const auto& [name, rec] : g.workloads()) names.insert(name);
  if (live)
    for (const auto& [name, ids] : live->workloads()) names.insert(name);
  for (const auto& name : names) ws.push_back(workload_to_json(name, g, live));
  json es = json::array();
  for (const auto& [k, e] : g.edges()) es.push_back(edge_to_json(k, e));
  return json{{"version", kGraphVersion}, {"workloads", std::move(ws)}, {"edges", std::move(es)}};
}

Result<Graph> graph_from_json(const json& j) {
  try {
    return parse_graph(j);
  } catch (const Fail& f) {
    return Error{f.msg};
  } catch (const json::exception& e) {
    return Error{std::string("malformed graph: ") + e.what()};
  }
}

json pending_to_json(const Graph& g) {
  std::vector<std::pair<const EdgeKey*, const PendingFlow*>> rows;
  for (const auto& [k, p] : g.pending()) rows.emplace_back(&k, &p);
  // Newest first: what an operator is most likely asking about.
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) {
    return a.second->last_seen != b.second->last_seen ? a.second->last_seen > b.second->last_seen
                                                      : a.second->id > b.second->id;
  });
  json out = json::array();
  for (auto [k, p] : rows) {
    json o = key_fields(*k);
    o["id"] = p->id;
    o["count"] = p->count;
    o["first_seen"] = format_time(p->first_seen);
    o["last_seen"] = format_time(p->last_seen);
    if (!p->reason.empty()) o["reason"] = p->reason;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace topowall::topology
