// A graph file for the agent: `topology import|diff` and `replay` pass it as a descriptor.
#pragma once

#include <string>

#include "app.hpp"
#include "common/fd.hpp"

namespace topowall::cli {

// The graph file (the export's JSON), checked, as a regular file the agent can read: the file itself, or
// (for a pipe such as `<(...)`) an in-memory copy; passed as a descriptor (docs/PROTOCOL.md "Large
// graphs"). Invalid: an empty fd and ctx.rc 2.
UniqueFd open_graph(Ctx& ctx, const std::string& file);

}  // namespace topowall::cli
