// The graph exchange format (schema.hpp) read and written a piece at a time, for graphs too large to
// hold as one JSON document: 100k edges are 18 MB of text and several times that as a JSON value.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "topowall/result.hpp"
#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"

namespace topowall::topology {

// Reads up to `cap` bytes into `buf`: how many (0 at the end), or why not.
using ReadFn = std::function<Result<std::size_t>(char* buf, std::size_t cap)>;

// The export's JSON pulled through `read`. Each workload and edge is checked and added as soon as it is
// complete, so memory holds the graph being built and one element, never the text or the document. The
// rules and messages are graph_from_json's, the nesting limit (kMaxJsonDepth) included; more than
// `max_bytes` of text is refused ("...over the import limit of N bytes") without reading further.
[[nodiscard]] Result<Graph> graph_from_stream(const ReadFn& read, std::size_t max_bytes);

// The export text, exactly graph_to_json(g, live).dump(2) followed by a newline, produced a part at a
// time. Between parts the graph may change (the caller's event loop runs on): the cursor resumes after
// the last key it wrote, so every edge and workload appears once, in the state it had when its part
// was written, and none is written twice.
class GraphTextCursor {
 public:
  // Appends the next part (about `budget` bytes, at least one element) to `out`; false once the text
  // is complete.
  bool next(const Graph& g, const EndpointTable* live, std::string& out, std::size_t budget);

 private:
  enum class Phase { start, edges, middle, workloads, done };
  Phase phase_ = Phase::start;
  bool any_ = false;  // an element of the current array was written
  std::optional<EdgeKey> last_edge_;
  std::optional<std::string> last_workload_;
};

}  // namespace topowall::topology
