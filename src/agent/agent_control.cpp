// The agent's control API: the method table (names and rights from include/topowall/control_methods.hpp)
// and the few handlers that need the whole agent (rules, export).
#include <algorithm>
#include <fstream>
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"
#include "metrics/radar_page.hpp"
#include "topowall/topology/exporters.hpp"
#include "topowall/topology/graph_stream.hpp"

namespace topowall::agent {

using nlohmann::json;
using topology::kHost;
using topology::kWorld;

json Agent::handle(const json& req, const control::Peer& peer, const control::PushFn& push) {
  return api_.handle(req, peer, push);
}

// One line per method: the names, rights and streaming are declared once (topowall/control_methods.hpp).
void Agent::register_methods() {
  using namespace control;
  api_.add(kStatus, [this](const json&) { return ok(status_json()); });
  api_.add(kWorkloads, [this](const json&) { return ok(workloads_json()); });
  api_.add(kFlowsPending, [this](const json&) { return ok(topology::pending_to_json(state_.graph)); });
  api_.add(kRulesShow, [this](const json&) { return rules_show(); });
  api_.add_with_fd(kTopologyExport, [this](const json& p, int fd) { return export_topology(p, fd); });
  api_.add(kExplain, [this](const json& p) { return policy_.explain(p); });
  api_.add_with_fd(kTopologyDiff, [this](const json& p, int fd) { return policy_.diff_graph(p, fd); });
  api_.add(kFlowsApprove, [this](const json& p) { return committed(policy_.decide_flows(p, topology::EdgeState::approved)); });
  api_.add(kFlowsDeny, [this](const json& p) { return committed(policy_.decide_flows(p, topology::EdgeState::denied)); });
  api_.add_with_fd(kTopologyImport, [this](const json& p, int fd) { return committed(policy_.import_graph(p, fd)); });
  api_.add(kEdgesRemove, [this](const json& p) { return committed(policy_.remove_edge(p)); });
  api_.add(kEdgesStale, [this](const json& p) { return history_.stale(p); });
  api_.add(kEdgesPrune, [this](const json& p) { return committed(history_.prune(p)); });
  api_.add_with_fd(kReplay, [this](const json& p, int fd) { return history_.replay(p, fd); });
  api_.add(kModeSet, [this](const json& p) {
    auto r = policy_.set_mode(p);
    return r.error ? r.body : committed(status_json());
  });
  api_.add_stream(kFlowsWatch, [this](const json&, const control::PushFn& push) -> json {
    if (!alerts_.watch(push)) return control::error_response("busy", "too many watchers (64); close one");
    push(ok(json{{"watching", true}}));
    return nullptr;  // the answer is the stream
  });
}

// A change is answered only once it is saved: a live change the state file lacks would be lost on restart.
json Agent::committed(json result) {
  dirty_ = true;
  if (auto st = persist(); !st)
    return control::error_response("not_saved", "the change is live but saving the state failed (" + st.error().message +
                                                    "); it is retried every second: check the state directory");
  return ok(std::move(result));
}

json Agent::rules_show() {
  if (const auto& m = programmer_.applied()) return ok(topology::render_nft(*m));
  return ok(topology::render_nft(
      topology::compile({state_.graph, endpoints_, state_.modes, time_->now()}, state_.ids, cfg_.ruleset)));
}

namespace {
// An export answered inline is built whole in memory: past this it must go through a pipe.
constexpr std::size_t kMaxInlineExport = 4 << 20;
}  // namespace

json Agent::export_topology(const json& params, int passed_fd) {
  const auto fmt = params.value("format", std::string("json"));
  std::function<std::string()> text;  // the non-JSON formats are rendered whole (a fraction of the JSON's size)
  if (fmt == "dot") text = [this] { return topology::export_dot(state_.graph); };
  else if (fmt == "mermaid") text = [this] { return topology::export_mermaid(state_.graph); };
  else if (fmt == "networkpolicy")
    text = [this] {
      return topology::export_networkpolicy(state_.graph, cfg_.identity.labels.empty() ? "app" : cfg_.identity.labels[0],
                                            cfg_.external);
    };
  else if (fmt == "html") text = [this] { return metrics::radar_exported_page(radar_json()); };
  else if (fmt != "json")
    return control::error_response("bad_params", "unknown format '" + fmt + "' (json, dot, mermaid, networkpolicy, html)");
  const auto to_pipe = params.find("fd");
  if (to_pipe != params.end() && *to_pipe == true) {
    ExportStreams::NextFn next;
    if (text) {
      auto all = std::make_shared<std::string>(text());
      next = [all, off = std::size_t{0}](std::string& out, std::size_t budget) mutable {
        const auto n = std::min(budget, all->size() - off);
        out.append(*all, off, n);
        off += n;
        return off < all->size();
      };
    } else {
      next = [this, cursor = topology::GraphTextCursor{}](std::string& out, std::size_t budget) mutable {
        return cursor.next(state_.graph, &endpoints_, out, budget);
      };
    }
    if (exports_.active() >= ExportStreams::kMaxActive)
      return control::error_response("busy", "too many exports in progress; retry when one has finished");
    if (auto st = exports_.start(passed_fd, std::move(next)); !st) return control::error_response("bad_params", st.error().message);
    return ok(json{{"format", fmt}, {"to_fd", true}, {"edges", state_.graph.edges().size()}});
  }
  const auto too_large = [](std::size_t bytes) {
    return control::error_response("too_large", "the export is " + std::to_string(bytes) + " bytes, over the " +
                                                    std::to_string(kMaxInlineExport) + " an answer line may carry; "
                                                    "ask with \"fd\": true and a pipe (as `topowall topology export` does)");
  };
  if (text) {
    auto t = text();
    return t.size() > kMaxInlineExport ? too_large(t.size()) : ok(std::move(t));
  }
  // Measured a part at a time before the whole value is built.
  topology::GraphTextCursor measure;
  std::string part;
  std::size_t bytes = 0;
  for (bool more = true; more && bytes <= kMaxInlineExport; bytes += part.size()) {
    part.clear();
    more = measure.next(state_.graph, &endpoints_, part, 64 << 10);
  }
  if (bytes > kMaxInlineExport) return too_large(bytes);
  return ok(topology::graph_to_json(state_.graph, &endpoints_));
}

}  // namespace topowall::agent
