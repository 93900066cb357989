// status, workloads: what the agent sees.
#include <iostream>

#include "commands.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {
namespace {

void show_workloads(const json& ws) {
  Table t({"WORKLOAD", "REPLICAS", "MODE", "ADDRESSES", "CONTAINERS"});
  for (const auto& w : ws) {
    std::string addrs, names;
    for (const auto& a : w["addresses"]) addrs += (addrs.empty() ? "" : ",") + str(a);
    for (const auto& c : w["containers"]) names += (names.empty() ? "" : ",") + str(c["name"]);
    t.row({str(w["name"]), str(w["replicas"]), str(w["mode"]), addrs, names});
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
