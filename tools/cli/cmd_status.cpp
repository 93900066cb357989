// status, workloads: what the agent sees.
#include <cstdint>
#include <iostream>

#include "commands.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"
#include "topowall/topology/duration.hpp"

namespace topowall::cli {
namespace {

// The new-edge curve as one character per bucket, oldest first: "." none, digits, "+" ten or more.
std::string curve_text(const json& l) {
  std::string out;
  if (!l.contains("new_edge_curve")) return "-";
  for (const auto& n : l["new_edge_curve"]["counts"]) {
    auto v = n.get<std::uint64_t>();
    out += v == 0 ? '.' : v < 10 ? static_cast<char>('0' + v) : '+';
  }
  return out;
}

void show_workloads(const json& ws) {
  Table t({"WORKLOAD", "REPLICAS", "MODE", "ADDRESSES", "CONTAINERS", "LEARNING", "LAST NEW EDGE", "PEERS",
           "UNANSWERED", "REFUSED", "HELD", "NEW EDGES (per minute, oldest first)"});
  for (const auto& w : ws) {
    std::string addrs, names;
    for (const auto& a : w["addresses"]) addrs += (addrs.empty() ? "" : ",") + str(a);
    for (const auto& c : w["containers"]) names += (names.empty() ? "" : ",") + str(c["name"]);
    const auto l = w.value("learning", json::object());
    auto verdict = l.value("verdict", std::string("-"));
    if (l.contains("quarantine") && l["quarantine"].is_string()) verdict += " (" + str(l["quarantine"]) + ")";
    const auto last = l.contains("since_last_new_edge_seconds") && l["since_last_new_edge_seconds"].is_number()
                          ? topology::format_duration(std::chrono::seconds(l["since_last_new_edge_seconds"].get<long long>())) + " ago"
                          : std::string("never");
    t.row({str(w["name"]), str(w["replicas"]), str(w["mode"]), addrs, names, verdict, last,
           str(l.value("peers", json(0))), str(l.value("unanswered", json(0))), str(l.value("refused", json(0))),
           str(l.value("held", json(0))), curve_text(l)});
  }
  std::cout << t.render();
}

}  // namespace

void add_status(CLI::App& app, Ctx& ctx) {
  app.add_subcommand("status", "mode, counts, learning progress")->callback([&ctx] {
    ctx.rc = call(ctx, control::kStatus, json::object(), json_or(ctx, show_status));
  });
  app.add_subcommand("workloads", "workloads and their replicas")->callback([&ctx] {
    ctx.rc = call(ctx, control::kWorkloads, json::object(), json_or(ctx, show_workloads));
  });
}

}  // namespace topowall::cli
