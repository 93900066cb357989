// The state file, as FileStateStore::load reads it (topology::parse_json, bounded nesting) and the agent
// starts from it: the strict schema, then the pending-flow bounds, the ruleset compiled from it and the
// first save. Whatever state_from_json accepts must also survive a save and a load unchanged.
#include <cstdio>

#include "agent_rig.hpp"
#include "fuzz_support.hpp"
#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto j = topology::parse_json(fuzz::as_text(data, size));
  if (!j) return 0;
  if (auto s = topology::state_from_json(*j)) {
    const auto saved = topology::state_to_json(*s);
    auto again = topology::state_from_json(topology::parse_json(saved.dump(1)).value());
    if (!again || !(*again == *s)) {
      std::fprintf(stderr, "state did not survive a save and a load: %s\n",
                   again ? saved.dump().c_str() : again.error().message.c_str());
      __builtin_trap();
    }
  }
  fuzz::AgentRig rig(std::move(*j));
  (void)rig.agent->start();  // refusing a bad file is the right answer; crashing is not
  return 0;
}
