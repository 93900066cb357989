// The graph format read and written a part at a time (graph_stream.hpp): the same graph, the same
// refusals and the same text as the whole-document functions, with bounded memory.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "topowall/topology/graph_stream.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;
using namespace topowall::topology;
using nlohmann::json;

namespace {
TimePoint at(const char* s) { return *parse_time(s); }

Graph sample(int edges) {
  Graph g;
  g.note_workload("web", {{"app", "web"}, {"tier", "front ü"}}, at("2026-11-30T10:00:00.250Z"));
  g.note_workload("api", {{"app", "api"}}, at("2026-11-30T10:00:01Z"));
  for (int i = 0; i < edges; ++i)
    g.observe({fmt::format("w{}", i % 97), fmt::format("s{}", i % 89), Proto::tcp, static_cast<std::uint16_t>(1 + i)},
              at("2026-11-30T10:01:00Z"), 1 + i % 5, i % 3 ? EdgeState::learned : EdgeState::approved);
  g.edges().upsert({"w0", "s0", Proto::tcp, 1}, [&](auto& e, auto) { e.comment = "ticket \"42\""; });
  g.edges().upsert({"w0", "s0", Proto::tcp, 1}, [&](auto& e, auto) { e.expires = at("2026-12-07T00:00:00Z"); });
  return g;
}

// Hands `text` out `chunk` bytes at a time, counting what was asked for.
struct Feed {
  std::string text;
  std::size_t chunk, off = 0, calls = 0;
  ReadFn fn() {
    return [this](char* buf, std::size_t cap) -> Result<std::size_t> {
      ++calls;
      auto n = std::min({cap, chunk, text.size() - off});
      std::memcpy(buf, text.data() + off, n);
      off += n;
      return n;
    };
  }
};

Result<Graph> streamed(const std::string& text, std::size_t chunk = 7, std::size_t max = 1 << 30) {
  Feed f{text, chunk};
  return graph_from_stream(f.fn(), max);
}

std::string cursor_text(const Graph& g, const EndpointTable* live, std::size_t budget) {
  GraphTextCursor c;
  std::string out;
  while (c.next(g, live, out, budget)) {}
  return out;
}
}  // namespace

TEST(GraphStream, ReadsWhatGraphFromJsonReads) {
  auto g = sample(500);
  for (std::size_t chunk : {1ul, 7ul, 65536ul}) {
    auto back = streamed(graph_to_json(g).dump(2), chunk);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->edges(), g.edges());
    EXPECT_EQ(back->workloads(), g.workloads());
  }
  // Compact text, fields in another order, empty arrays.
  auto compact = streamed(R"({"workloads":[],"version":1,"edges":[]})");
  ASSERT_TRUE(compact) << compact.error().message;
  EXPECT_TRUE(compact->edges().empty());
}

// Every refusal of graph_from_json, word for word, read as a stream.
TEST(GraphStream, RefusesWhatGraphFromJsonRefusesWithTheSameMessage) {
  auto base = graph_to_json(sample(3));
  std::vector<std::function<void(json&)>> cases = {
      [](json& j) { j["version"] = 2; },
      [](json& j) { j.erase("version"); },
      [](json& j) { j["extra"] = 1; },
      [](json& j) { j["edges"][0]["src"] = "a\"b"; },
      [](json& j) { j["edges"][1]["port"] = "80"; },
      [](json& j) { j["edges"][2]["proto"] = "gre"; },
      [](json& j) { j["edges"][0]["color"] = "red"; },
      [](json& j) { j["edges"].push_back(j["edges"][0]); },
      [](json& j) { j["edges"].push_back(7); },
      [](json& j) { j["edges"].push_back(json::array({1, 2})); },
      [](json& j) { j["workloads"].push_back(j["workloads"][0]); },
      [](json& j) { j["workloads"][1]["labels"] = "x"; },
      [](json& j) { j["workloads"] = "web"; },
      [](json& j) { j.erase("edges"); },
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto j = base;
    cases[i](j);
    auto whole = graph_from_json(j);
    auto part = streamed(j.dump());
    ASSERT_FALSE(whole) << i;
    ASSERT_FALSE(part) << i;
    EXPECT_EQ(part.error().message, whole.error().message) << i;
  }
  EXPECT_EQ(streamed("[1,2]").error().message, "$: must be an object");
  EXPECT_EQ(streamed("5").error().message, "$: must be an object");
  EXPECT_EQ(streamed(R"({"version":1,"workloads":[],"edges":)").error().message.rfind("not valid JSON (syntax error at byte", 0), 0u);
}

// A hostile file: nested 200,000 deep inside an edge, or a field where elements belong that would be
// held whole. Refused while read, without a crash.
TEST(GraphStream, AppliesTheNestingLimitAndHoldsNoWholeValue) {
  auto deep = std::string(200000, '[') + std::string(200000, ']');
  auto r = streamed(R"({"version":1,"workloads":[],"edges":[{"src":)" + deep + "}]}", 4096);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "JSON nested deeper than 64 levels of arrays and objects");
  // "edges" as an object of a million members would be built whole: refused as it opens, after a few
  // reads rather than all of it.
  std::string text = R"({"version":1,"workloads":[],"edges":{)";
  for (int i = 0; i < 100000; ++i) text += fmt::format(R"("k{}":1,)", i);
  text += R"("z":1}})";
  Feed f{text, 4096};
  auto obj = graph_from_stream(f.fn(), 1 << 30);
  ASSERT_FALSE(obj);
  EXPECT_EQ(obj.error().message, "$.edges: must be an array");
  EXPECT_LT(f.off, 10000u) << "stopped at the opening brace";
}

TEST(GraphStream, StopsReadingAtTheImportLimit) {
  const auto text = graph_to_json(sample(2000)).dump();
  Feed f{text, 65536};
  auto r = graph_from_stream(f.fn(), 100000);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than 100000 bytes, over the import limit"), std::string::npos) << r.error().message;
  EXPECT_LE(f.off, 100000u + 65536u) << "read no further than one part past the limit";
  EXPECT_TRUE(streamed(text, 65536, text.size())) << "exactly the limit is allowed";
  // A read error is said as such.
  ReadFn failing = [](char*, std::size_t) -> Result<std::size_t> { return Error{"reading the graph file: EIO"}; };
  EXPECT_EQ(graph_from_stream(failing, 1000).error().message, "reading the graph file: EIO");
}

// The streamed export is byte for byte what the inline export printed (graph_to_json(...).dump(2)), in
// parts of any size, with live workloads the graph does not know yet.
TEST(GraphStream, CursorWritesExactlyTheDocumentDumped) {
  auto g = sample(300);
  EndpointTable live;
  EndpointInfo info;
  info.id = "c1";
  info.addresses = {*IpAddr::parse("10.0.0.9")};
  (void)live.upsert("aaa-live-only", info);
  info.id = "c2";
  info.addresses = {*IpAddr::parse("10.0.0.10")};
  (void)live.upsert("web", info);
  for (std::size_t budget : {1ul, 100ul, 4096ul, 1ul << 30}) {
    EXPECT_EQ(cursor_text(g, &live, budget), graph_to_json(g, &live).dump(2) + "\n") << budget;
    EXPECT_EQ(cursor_text(g, nullptr, budget), graph_to_json(g).dump(2) + "\n") << budget;
  }
  EXPECT_EQ(cursor_text(Graph{}, nullptr, 10), graph_to_json(Graph{}).dump(2) + "\n");
  // Parts are about the budget: one element past it at most.
  GraphTextCursor c;
  std::string part;
  EXPECT_TRUE(c.next(g, nullptr, part, 1000));
  EXPECT_LT(part.size(), 1500u);
}

// The graph changes between parts (the agent's loop runs on): no edge twice, every untouched edge once,
// and the text still reads back.
TEST(GraphStream, CursorResumesAfterTheLastKeyWhenTheGraphChanges) {
  auto g = sample(1000);
  GraphTextCursor c;
  std::string out;
  ASSERT_TRUE(c.next(g, nullptr, out, 20000));
  g.edges().erase(g.edges().begin());                                              // already written
  g.edges().erase(std::prev(g.edges().end()));                                     // not yet written
  g.observe({"zzz", "s1", Proto::udp, 53}, at("2026-11-30T11:00:00Z"));             // ahead of the cursor
  g.observe({"a-first", "s1", Proto::udp, 53}, at("2026-11-30T11:00:00Z"));         // behind it
  while (c.next(g, nullptr, out, 20000)) {}
  auto back = streamed(out);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->edges().size(), 1000u) << "999 kept, one removed behind the cursor still written, one added ahead";
  EXPECT_TRUE(back->find({"zzz", "s1", Proto::udp, 53}));
  EXPECT_FALSE(back->find({"a-first", "s1", Proto::udp, 53}));
}

// The state file written as text holds exactly the document state_to_json builds, escapes included.
TEST(StateText, IsTheStateDocument) {
  State s;
  s.modes.global = Mode::enforce;
  s.modes.overrides["api"] = Mode::learn;
  s.learn_until = at("2026-12-01T00:00:00Z");
  s.workload_learn_until["web"] = at("2026-12-02T00:00:00Z");
  s.graph = sample(200);
  s.graph.edges().upsert({"w1", "s1", Proto::udp, 53}, [&](auto& e, auto) { e.comment = "a \"quoted\"\\ comment\nwith ü"; });
  s.graph.edges().upsert({"odd\"name", "s1", Proto::icmp, 8}, [&](auto& e, auto) { e.count = 3; });  // not a valid name: escaped all the same
  (void)s.graph.observe_pending({"api", "web", Proto::tcp, 22}, at("2026-11-30T10:03:00Z"), {}, 3);
  s.ids.id("web");
  ClusterEndpoint remote;  // persisted so a restart without etcd keeps enforcing peers by name
  remote.node = "n2";
  remote.id = "c1";
  remote.workload = "db";
  remote.name = "db-1";
  remote.addresses = {*IpAddr::parse("10.9.0.7")};
  ClusterEndpoint dual = remote;  // several addresses, both families, a name that needs escaping
  dual.id = "c2";
  dual.name = "db \"2\"";
  dual.addresses = {*IpAddr::parse("10.9.0.8"), *IpAddr::parse("fd00::8")};
  ClusterEndpoint none = remote;
  none.id = "c3";
  none.addresses.clear();
  s.remote_endpoints = {remote, dual, none};
  auto text = state_to_text(s);
  ASSERT_EQ(text.back(), '\n');
  auto j = json::parse(text);
  EXPECT_EQ(j, state_to_json(s));
  s.graph.erase({"odd\"name", "s1", Proto::icmp, 8});
  auto back = state_from_json(json::parse(state_to_text(s)));
  ASSERT_TRUE(back) << back.error().message.substr(0, 200);
  EXPECT_EQ(*back, s);
  const State empty;  // named: GCC 12 warns (falsely) of an uninitialised map in two temporaries
  EXPECT_EQ(state_to_text(empty), state_to_json(empty).dump() + "\n");
}
