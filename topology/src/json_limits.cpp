#include "topowall/topology/json_limits.hpp"

#include <fmt/format.h>

namespace topowall::topology {

Result<nlohmann::json> parse_json(std::string_view text, int max_depth) {
  using nlohmann::json;
  bool too_deep = false;
  // `depth` counts the containers around the event, so an array or object opened at depth d is level
  // d + 1. Returning false discards it, and everything inside, unbuilt; the parser itself keeps only a
  // flat stack and reads on, so the refusal is reported once the text is read.
  json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= max_depth) {
      too_deep = true;
      return false;
    }
    return !too_deep;
  };
  const auto nested = [&] {
    return Error{fmt::format("JSON nested deeper than {} levels of arrays and objects", max_depth)};
  };
  try {
    auto j = json::parse(text.begin(), text.end(), limit);
    if (too_deep) return nested();
    return j;
  } catch (const json::parse_error& e) {
    if (too_deep) return nested();
    return Error{fmt::format("not valid JSON (syntax error at byte {})", e.byte)};
  } catch (const std::exception& e) {  // out of memory: still an answer, never an exception
    return Error{std::string("not readable as JSON (") + e.what() + ")"};
  }
}

}  // namespace topowall::topology
