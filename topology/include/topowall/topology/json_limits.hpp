// Parsing JSON that comes from outside the process (the control socket, etcd, the state file, an
// imported graph, the container runtime's API) with a bound on its nesting.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "topowall/result.hpp"

namespace topowall::topology {

// nlohmann's parser and destructor are iterative, but copying, comparing and dumping a value recurse once
// per level: a value nested 200,000 deep (400 KB of brackets) overflows the stack the first time it is
// used. Nothing topowall, etcd or a container runtime writes comes near this (under 10 levels).
inline constexpr int kMaxJsonDepth = 64;

// The value, or why not, worded to follow "<what> is ": "not valid JSON (syntax error at byte 12)" or
// "JSON nested deeper than 64 levels of arrays and objects". A value too deep is refused while it is
// parsed, before it is built. Never throws.
// Whether arrays and objects outside strings nest deeper than `max_depth` (unbalanced text included).
[[nodiscard]] bool nested_deeper_than(std::string_view text, int max_depth = kMaxJsonDepth);

[[nodiscard]] Result<nlohmann::json> parse_json(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace topowall::topology
