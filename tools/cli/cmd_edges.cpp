// edges list|remove: the graph edge by edge.
#include <iostream>

#include "cluster_write.hpp"
#include "commands.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {
namespace {

void show_edges(const json& g) {
  Table t({"SOURCE", "DESTINATION", "PORT", "STATE", "COUNT", "FIRST SEEN", "LAST SEEN"});
  for (const auto& e : g["edges"])
    t.row({str(e["src"]), str(e["dst"]), port_text(e), str(e["state"]), str(e["count"]),
           relative_time(str(e["first_seen"])), relative_time(str(e["last_seen"]))});
  std::cout << t.render();
}

}  // namespace

void add_edges(CLI::App& app, Ctx& ctx) {
  auto* edges = app.add_subcommand("edges", "the graph's edges")->require_subcommand(1);
  edges->add_subcommand("list", "list edges")->callback([&ctx] {
    ctx.rc = call(ctx, control::kTopologyExport, {{"format", "json"}}, [&ctx](const json& r) {
      if (ctx.json()) std::cout << r["edges"].dump(2) << "\n";
      else show_edges(r);
    });
  });

  auto* remove = edges->add_subcommand("remove", "revoke an edge and its established connections");
  auto key = add_flow_key(*remove, "source workload", "destination workload", "e.g. tcp/8080");
  auto etcd = add_etcd_flags(*remove);
  remove->callback([&ctx, key, etcd] {
    json p;
    if (!flow_key_params(ctx, *key, p)) return;
    json answer;
    ctx.rc = call(ctx, control::kEdgesRemove, p, [&](const json& r) {
      answer = r;
      std::cout << "removed " << str(r["removed"]) << "\n";
    });
    if (ctx.rc == 0) ctx.rc = share_decisions(*etcd, answer);
  });
}

}  // namespace topowall::cli
