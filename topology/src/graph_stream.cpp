#include "topowall/topology/graph_stream.hpp"

#include <fmt/format.h>

#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::topology {

namespace detail {  // schema.cpp: one element, checked as graph_from_json checks it
Status add_workload(Graph& g, const nlohmann::json& w, const std::string& path);
Status add_edge(Graph& g, const nlohmann::json& e, const std::string& path);
Status check_graph_version(const nlohmann::json& top);
}  // namespace detail

namespace {

using nlohmann::json;
using Event = json::parse_event_t;

// Buffered bytes from a ReadFn, counted against the limit.
class Source {
 public:
  Source(const ReadFn& read, std::size_t max) : read_(read), max_(max), buf_(64 << 10) {}
  bool more() { return pos_ < len_ || fill(); }
  const char& peek() const { return buf_[pos_]; }
  void advance() { ++pos_; }
  bool over = false;
  std::optional<Error> error;

 private:
  bool fill() {
    if (done_) return false;
    auto n = read_(buf_.data(), buf_.size());
    if (!n) error = n.error();
    else if ((total_ += *n) > max_) over = true;
    done_ = !n || *n == 0 || over;
    pos_ = 0;
    len_ = done_ ? 0 : *n;
    return !done_;
  }
  const ReadFn& read_;
  std::size_t max_, total_ = 0, pos_ = 0, len_ = 0;
  bool done_ = false;
  std::vector<char> buf_;
};

// The input iterator nlohmann's parser pulls characters through; all copies share the one Source.
struct SourceIter {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  Source* src = nullptr;  // nullptr: the end
  reference operator*() const { return src->peek(); }
  SourceIter& operator++() {
    src->advance();
    return *this;
  }
  SourceIter operator++(int) {
    auto copy = *this;
    src->advance();
    return copy;
  }
  bool at_end() const { return !src || !src->more(); }
  friend bool operator==(const SourceIter& a, const SourceIter& b) { return a.at_end() == b.at_end(); }
};

struct Stop {
  std::string msg;
};

// Parser events to graph elements. The document is kept only down to its top-level fields: every element
// of "workloads" and "edges" is handed to the schema's checks when complete and then discarded.
struct Builder {
  Graph g;
  std::string key;  // the top-level field being read
  std::size_t index[2] = {0, 0};

  bool on(int depth, Event ev, json& parsed) {
    const bool opens = ev == Event::object_start || ev == Event::array_start;
    if (opens && depth >= kMaxJsonDepth)
      throw Stop{fmt::format("JSON nested deeper than {} levels of arrays and objects", kMaxJsonDepth)};
    if (depth == 0 && ev == Event::array_start) throw Stop{"$: must be an object"};
    if (depth == 1 && ev == Event::key) {
      key = parsed.get<std::string>();
      if (key != "version" && key != "workloads" && key != "edges") throw Stop{"$." + key + ": unknown field"};
    }
    // Whole values where elements are expected would be held in full: refused as they open.
    if (depth == 1 && opens && (key == "version" || ev == Event::object_start))
      throw Stop{"$." + key + (key == "version" ? ": must be a non-negative integer" : ": must be an array")};
    if (depth == 2 && (ev == Event::object_end || ev == Event::array_end || ev == Event::value)) {
      const bool edge = key == "edges";
      const auto path = fmt::format("$.{}[{}]", key, index[edge]++);
      auto st = edge ? detail::add_edge(g, parsed, path) : detail::add_workload(g, parsed, path);
      if (!st) throw Stop{st.error().message};
      return false;  // discarded: the document never holds it
    }
    return true;
  }
};

Status check_top(const json& top) {
  if (!top.is_object()) return Error{"$: must be an object"};
  for (const char* field : {"workloads", "edges"}) {
    auto it = top.find(field);
    if (it == top.end()) return Error{fmt::format("$.{}: missing", field)};
    if (!it->is_array()) return Error{fmt::format("$.{}: must be an array", field)};
  }
  return detail::check_graph_version(top);
}

}  // namespace

Result<Graph> graph_from_stream(const ReadFn& read, std::size_t max_bytes) {
  Source src(read, max_bytes);
  Builder b;
  const auto over = [&] {
    return Error{fmt::format("more than {} bytes, over the import limit; raise --max-import-bytes or split the graph",
                             max_bytes)};
  };
  try {
    json top = json::parse(SourceIter{&src}, SourceIter{},
                           [&](int depth, Event ev, json& parsed) { return b.on(depth, ev, parsed); });
    if (src.error) return *src.error;
    if (src.over) return over();
    if (auto st = check_top(top); !st) return st.error();
    return std::move(b.g);
  } catch (const Stop& s) {
    return Error{s.msg};
  } catch (const json::parse_error& e) {
    if (src.error) return *src.error;
    if (src.over) return over();
    return Error{fmt::format("not valid JSON (syntax error at byte {})", e.byte)};
  } catch (const std::exception& e) {  // out of memory: an answer, never an exception
    return Error{std::string("not readable as a graph (") + e.what() + ")"};
  }
}

bool GraphTextCursor::next(const Graph& g, const EndpointTable* live, std::string& out, std::size_t budget) {
  const std::size_t start = out.size();
  const auto room = [&] { return out.size() - start < budget; };
  // One element of an array, as dump(2) writes it two levels down.
  const auto element = [&](const json& j) {
    out += any_ ? ",\n    " : "\n    ";
    any_ = true;
    for (char c : j.dump(2)) {
      out += c;
      if (c == '\n') out.append(4, ' ');
    }
  };
  if (phase_ == Phase::start) {
    out += "{\n  \"edges\": [";
    phase_ = Phase::edges;
  }
  if (phase_ == Phase::edges) {
    auto it = last_edge_ ? g.edges().upper_bound(*last_edge_) : g.edges().begin();
    for (; it != g.edges().end() && room(); ++it) {
      element(edge_to_json(it->first, it->second));
      last_edge_ = it->first;
    }
    if (it != g.edges().end()) return true;
    out += any_ ? "\n  ],\n" : "],\n";
    out += fmt::format("  \"version\": {},\n  \"workloads\": [", kGraphVersion);
    phase_ = Phase::workloads;
    any_ = false;
  }
  if (phase_ == Phase::workloads) {
    // The graph's names and the live endpoints' names, merged in order, from after the last written.
    const auto after = [&](const auto& m) { return last_workload_ ? m.upper_bound(*last_workload_) : m.begin(); };
    auto a = after(g.workloads());
    std::optional<std::map<std::string, std::vector<const Endpoint*>>::const_iterator> b;
    if (live) b = after(live->workloads());
    for (;;) {
      const bool a_left = a != g.workloads().end(), b_left = b && *b != live->workloads().end();
      if (!a_left && !b_left) break;
      if (!room()) return true;
      const std::string& name = !b_left || (a_left && a->first <= (*b)->first) ? a->first : (*b)->first;
      element(workload_to_json(name, g, live));
      last_workload_ = name;
      if (a_left && a->first == *last_workload_) ++a;
      if (b_left && (*b)->first == *last_workload_) ++*b;
    }
    out += any_ ? "\n  ]\n}\n" : "]\n}\n";
    phase_ = Phase::done;
  }
  return false;
}

}  // namespace topowall::topology
