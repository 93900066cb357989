// The control protocol: each line of the input is one request as a client writes it to the socket,
// read the way control::Server reads it (topology::parse_json, bounded nesting; an object or refused),
// then dispatched by a whole agent on fakes (envelope, method table, typed parameters, the handlers,
// topology.import/diff with their graph) and answered with dump(), as the server answers.
#include <string>
#include <string_view>

#include "agent_rig.hpp"
#include "control/server.hpp"
#include "fuzz_support.hpp"
#include "topowall/topology/json_limits.hpp"

using nlohmann::json;

namespace {
constexpr int kMaxRequests = 16;  // per input: enough for a sequence (import, approve, explain ...)

// `out` outlives the agent: a flows.watch stream keeps its push function after its request is answered.
void answer(topowall::agent::Agent& agent, std::string_view line, std::string& out) {
  out.clear();
  try {  // as control::Server: whatever the handler or dump() throws is an `internal` answer
    auto req = topowall::topology::parse_json(line);
    if (!req || !req->is_object()) return;
    topowall::control::Peer peer;  // root: every method, including those that change state
    peer.may_write = true;
    topowall::control::PushFn push = [&out](const json& j) {
      out += j.dump() + "\n";
      return true;
    };
    json resp = agent.handle(*req, peer, push);
    if (!resp.is_null()) out += resp.dump() + "\n";
  } catch (const std::exception& e) {
    out += topowall::control::error_response("internal", e.what()).dump() + "\n";
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string out;
  topowall::fuzz::AgentRig rig;
  if (!rig.start_with_flows()) __builtin_trap();  // the rig itself is broken: not the input's fault
  auto text = topowall::fuzz::as_text(data, size);
  for (int n = 0; n < kMaxRequests && !text.empty(); ++n) {
    auto nl = text.find('\n');
    answer(*rig.agent, text.substr(0, nl), out);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return 0;
}
