#include "topowall/topology/json_limits.hpp"

#include <fmt/format.h>

namespace topowall::topology {

// A scan, not nlohmann's callback parser: that one searches the enclosing container for a discarded value
// after every object, so a long array of objects (a graph, a state file) took quadratic time.
bool nested_deeper_than(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

Result<nlohmann::json> parse_json(std::string_view text, int max_depth) {
  using nlohmann::json;
  // Refused before anything is built; the parse then never meets a value deeper than the limit.
  if (nested_deeper_than(text, max_depth))
    return Error{fmt::format("JSON nested deeper than {} levels of arrays and objects", max_depth)};
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return Error{fmt::format("not valid JSON (syntax error at byte {})", e.byte)};
  } catch (const std::exception& e) {  // out of memory: still an answer, never an exception
    return Error{std::string("not readable as JSON (") + e.what() + ")"};
  }
}

}  // namespace topowall::topology
