#include <gtest/gtest.h>

#include "topowall/topology/exporters.hpp"
#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;
using namespace topowall::topology;
using nlohmann::json;

namespace {
TimePoint at(const char* s) { return *parse_time(s); }

State sample() {
  State s;
  s.modes.global = Mode::monitor;
  s.modes.overrides["api"] = Mode::enforce;
  s.learn_until = at("2026-12-01T00:00:00Z");
  s.graph.note_workload("web", {{"app", "web"}}, at("2026-11-30T10:00:00.250Z"));
  s.graph.note_workload("api", {{"app", "api"}}, at("2026-11-30T10:00:01Z"));
  s.graph.observe({"web", "api", Proto::tcp, 8080}, at("2026-11-30T10:01:00Z"), 7);
  s.graph.observe({"web", "api", Proto::icmp, 8}, at("2026-11-30T10:01:00Z"));
  s.graph.observe({"api", "world", Proto::udp, 53}, at("2026-11-30T10:02:00Z"), 1, EdgeState::approved);
  s.graph.edges().upsert({"api", "world", Proto::udp, 53}, [&](auto& e, auto) { e.comment = "dns"; });
  s.graph.edges().upsert({"api", "world", Proto::udp, 53}, [&](auto& e, auto) { e.expires = at("2026-12-07T00:00:00Z"); });
  (void)s.graph.observe_pending({"api", "web", Proto::tcp, 22}, at("2026-11-30T10:03:00Z"), {}, 3);
  s.ids.id("web");
  s.workload_learn_until["api"] = at("2026-12-02T00:00:00Z");
  s.ids.id("api");
  s.remote_endpoints.push_back({"node-b", "c9", "db", "db-1", {*IpAddr::parse("10.2.0.9"), *IpAddr::parse("fd00:2::9")}});
  return s;
}
}  // namespace

TEST(Time, RoundTripsRfc3339) {
  auto t = at("2026-11-30T11:31:32.123Z");
  EXPECT_EQ(format_time(t), "2026-11-30T11:31:32.123Z");
  EXPECT_EQ(format_time(at("1970-01-01T00:00:00Z")), "1970-01-01T00:00:00.000Z");
  EXPECT_FALSE(parse_time("2026-11-30 11:31:32Z"));
  EXPECT_FALSE(parse_time("2026-11-30T11:31:32+01:00"));
  EXPECT_FALSE(parse_time("2026-13-30T11:31:32Z"));
}

// Found by fuzz_graph: year 6598 is 146 trillion seconds, which overflowed the conversion to the clock's
// nanoseconds (undefined behaviour; a garbage time at best). Only years whose times the clock holds,
// with room for the agent's arithmetic on them, are read.
TEST(Time, YearsTheClockCannotHoldAreRefused) {
  EXPECT_FALSE(parse_time("6598-12-31T00:00:00.000Z"));
  EXPECT_FALSE(parse_time("9999-12-31T23:59:59Z"));
  EXPECT_FALSE(parse_time("0000-01-01T00:00:00Z"));
  EXPECT_FALSE(parse_time("1969-12-31T23:59:59Z"));
  EXPECT_EQ(format_time(at("2200-12-31T23:59:59.999Z")), "2200-12-31T23:59:59.999Z");
  auto g = graph_from_json(nlohmann::json::parse(
      R"({"version":1,"workloads":[{"name":"web","first_seen":"6598-12-31T00:00:00.000Z"}],"edges":[]})"));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("$.workloads[0].first_seen"), std::string::npos) << g.error().message;
}

TEST(Schema, StateRoundTripsExactly) {
  auto s = sample();
  auto j = state_to_json(s);
  auto back = state_from_json(json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->graph.next_pending_id(), 2u);
}

TEST(Schema, ExportHasTheDocumentedShape) {
  auto j = graph_to_json(sample().graph);
  EXPECT_EQ(j["version"], 1);
  ASSERT_EQ(j["workloads"].size(), 2u);
  EXPECT_EQ(j["workloads"][0]["name"], "api");
  ASSERT_EQ(j["edges"].size(), 3u);
  for (const auto& e : j["edges"])
    for (auto* f : {"src", "dst", "proto", "port", "state", "count", "first_seen", "last_seen"})
      EXPECT_TRUE(e.contains(f)) << f;
  auto g = graph_from_json(j);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->edges(), sample().graph.edges());
}

TEST(Schema, RejectsInvalidGraphsNamingTheField) {
  auto base = graph_to_json(sample().graph);
  struct Case {
    std::function<void(json&)> mutate;
    std::string expect;
  };
  std::vector<Case> cases = {
      {[](json& j) { j["version"] = 2; }, "$.version"},
      {[](json& j) { j["extra"] = 1; }, "$.extra: unknown field"},
      {[](json& j) { j["edges"][0]["src"] = "a\"b"; }, "$.edges[0].src: invalid name"},
      {[](json& j) { j["edges"][0]["dst"] = "x\n}; flush ruleset"; }, "$.edges[0].dst: invalid name"},
      {[](json& j) { j["edges"][0]["src"] = std::string(64, 'a'); }, "$.edges[0].src: invalid name"},
      {[](json& j) { j["edges"][0]["port"] = "80"; }, "$.edges[0].port: must be a non-negative integer"},
      {[](json& j) { j["edges"][0]["port"] = 70000; }, "$.edges[0].port: must be at most"},
      {[](json& j) { j["edges"][0]["proto"] = "gre"; }, "$.edges[0].proto"},
      {[](json& j) { j["edges"][0]["state"] = "maybe"; }, "$.edges[0].state"},
      {[](json& j) { j["edges"][0]["first_seen"] = "yesterday"; }, "$.edges[0].first_seen"},
      {[](json& j) { j["edges"][0]["color"] = "red"; }, "$.edges[0].color: unknown field"},
      {[](json& j) { j["edges"].push_back(j["edges"][0]); }, "duplicate edge"},
      {[](json& j) { j["workloads"] = "web"; }, "$.workloads: must be an array"},
      {[](json& j) { j.erase("edges"); }, "$.edges: missing"},
  };
  for (const auto& c : cases) {
    auto j = base;
    c.mutate(j);
    auto g = graph_from_json(j);
    ASSERT_FALSE(g) << c.expect;
    EXPECT_NE(g.error().message.find(c.expect), std::string::npos) << g.error().message;
  }
}

// Graph files and requests reach graph_from_json through parse_json: an export reads back, a file
// nested deeper than any graph (a hostile one, 200,000 levels) is refused before it is built.
TEST(Schema, ImportedTextIsParsedWithANestingLimit) {
  auto text = graph_to_json(sample().graph).dump(2);
  auto j = parse_json(text);
  ASSERT_TRUE(j) << j.error().message;
  auto g = graph_from_json(*j);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->edges(), sample().graph.edges());

  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(parse_json(nested(kMaxJsonDepth)));
  for (int depth : {kMaxJsonDepth + 1, 200000}) {
    auto deep = parse_json(R"({"version":1,"workloads":[],"edges":[{"labels":)" + nested(depth) + "}]}");
    ASSERT_FALSE(deep) << depth;
    EXPECT_EQ(deep.error().message, "JSON nested deeper than 64 levels of arrays and objects");
  }
  // Objects count as arrays do; only containers count, not the scalars inside the last one.
  std::string objects;
  for (int i = 0; i < kMaxJsonDepth; ++i) objects += R"({"a":)";
  EXPECT_TRUE(parse_json(objects + "1" + std::string(kMaxJsonDepth, '}')));
  EXPECT_FALSE(parse_json(objects + "{}" + std::string(kMaxJsonDepth, '}')));
  // Unbalanced: still the nesting that is named, not a crash or a syntax error at the end.
  EXPECT_EQ(parse_json(std::string(200000, '[')).error().message,
            "JSON nested deeper than 64 levels of arrays and objects");

  // Brackets inside strings are text, not nesting.
  EXPECT_TRUE(parse_json(R"({"a":")" + std::string(200, '[') + R"(\"[{"})"));
  // A long array of objects: nlohmann's callback parser (the old way of bounding depth) searched the array
  // after each object, so this took minutes (quadratic); it must take a fraction of a second.
  std::string many = "[";
  for (int i = 0; i < 300000; ++i) many += i ? R"(,{"a":1})" : R"({"a":1})";
  auto long_array = parse_json(many + "]");
  ASSERT_TRUE(long_array) << long_array.error().message;
  EXPECT_EQ(long_array->size(), 300000u);

  auto bad = parse_json("{\"version\": 1,");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind("not valid JSON (syntax error at byte", 0), 0u) << bad.error().message;
  EXPECT_FALSE(parse_json(""));
}

TEST(Schema, SavedRemoteEndpointsAreCheckedLikeEtcdValues) {
  for (const char* field : {"workload", "addresses"}) {
    auto j = state_to_json(sample());
    j["remote_endpoints"][0][field] = field == std::string("workload") ? json("a b") : json::array({"10.2.0.300"});
    auto s = state_from_json(j);
    ASSERT_FALSE(s) << field;
    EXPECT_NE(s.error().message.find("remote_endpoints[0]"), std::string::npos) << s.error().message;
  }
}

TEST(Schema, StateRejectsUnknownVersion) {
  auto j = state_to_json(sample());
  j["version"] = 99;
  auto s = state_from_json(j);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("version 99"), std::string::npos);
}

TEST(Exporters, DotAndMermaidNameEveryEdge) {
  auto g = sample().graph;
  auto dot = export_dot(g);
  EXPECT_NE(dot.find("\"web\" -> \"api\" [label=\"tcp/8080\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"web\" -> \"api\" [label=\"icmp type 8\"]"), std::string::npos);
  EXPECT_NE(dot.find("\"api\" -> \"world\" [label=\"udp/53\", color=blue]"), std::string::npos);
  EXPECT_EQ(dot.rfind("digraph topowall {", 0), 0u);
  auto mm = export_mermaid(g);
  EXPECT_EQ(mm.rfind("flowchart LR", 0), 0u);
  EXPECT_NE(mm.find("tcp/8080 (learned)"), std::string::npos) << mm;
}

TEST(Exporters, PendingIsNewestFirst) {
  Graph g;
  (void)g.observe_pending({"a", "b", Proto::tcp, 1}, at("2026-11-30T10:00:00Z"), {});
  (void)g.observe_pending({"a", "b", Proto::tcp, 2}, at("2026-11-30T10:05:00Z"), {});
  auto p = pending_to_json(g);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0]["port"], 2);
  EXPECT_EQ(p[0]["id"], 2);
  for (auto* f : {"id", "src", "dst", "proto", "port", "count", "first_seen", "last_seen"}) EXPECT_TRUE(p[0].contains(f));
}

// Graph files and saved state carry namespaced names whole; one '/' after a DNS label, never more.
TEST(Schema, NamespacedNamesRoundTripAndAreCheckedStrictly) {
  State s;
  s.graph.note_workload("shop/web", {{"app", "web"}}, at("2026-11-30T10:00:00Z"));
  s.graph.observe({"tenant-a/web", "shop/db", Proto::tcp, 5432}, at("2026-11-30T10:01:00Z"));
  s.modes.overrides["shop/web"] = Mode::enforce;
  s.ids.id("shop/web");
  auto back = state_from_json(json::parse(state_to_json(s).dump()));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
  for (const auto* bad : {"shop/web/x", "Shop/web", "shop//web", "/web", "../shop/web"}) {
    auto j = graph_to_json(s.graph);
    j["edges"][0]["src"] = bad;
    auto g = graph_from_json(j);
    ASSERT_FALSE(g) << bad;
    EXPECT_NE(g.error().message.find("invalid name"), std::string::npos) << g.error().message;
  }
}
