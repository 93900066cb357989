// edges list|remove|stale|prune: the graph edge by edge.
#include <unistd.h>

#include <iostream>

#include "cluster_write.hpp"
#include "commands.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"
#include "topowall/topology/duration.hpp"

namespace topowall::cli {
namespace {

void show_edges(const json& g) {
  Table t({"SOURCE", "DESTINATION", "PORT", "STATE", "COUNT", "FIRST SEEN", "LAST SEEN"});
  for (const auto& e : g["edges"])
    t.row({str(e["src"]), str(e["dst"]), port_text(e), str(e["state"]), str(e["count"]),
           relative_time(str(e["first_seen"])), relative_time(str(e["last_seen"]))});
  std::cout << t.render();
}

void show_stale(const json& r) {
  Table t({"SOURCE", "DESTINATION", "PORT", "STATE", "LAST USED"});
  for (const auto& e : r["edges"])
    t.row({str(e["src"]), str(e["dst"]), port_text(e), str(e["state"]), relative_time(str(e["last_used"]))});
  std::cout << t.render();
  if (r["omitted"].get<std::uint64_t>() > 0) std::cout << "(" << str(r["omitted"]) << " more: prune these, then ask again)\n";
}

struct StaleArgs {
  std::string unused_for;
  bool yes = false;
};

// The period as unused_for_seconds; false, with ctx.rc 2, when it is not a duration.
bool unused_for(Ctx& ctx, const StaleArgs& a, json& p) {
  auto d = topology::parse_duration(a.unused_for);
  if (!d || d->count() <= 0) {
    ctx.rc = fail("--unused-for '" + a.unused_for + "' is not a duration like 30d", 2);
    return false;
  }
  p["unused_for_seconds"] = d->count();
  return true;
}

// Lists the stale edges, asks (unless --yes), then removes them; the agent keeps any edge used meanwhile.
void prune(Ctx& ctx, const StaleArgs& a) {
  json p;
  if (!unused_for(ctx, a, p)) return;
  json listed;
  ctx.rc = call(ctx, control::kEdgesStale, p, [&](const json& r) { listed = r; });
  if (ctx.rc != 0) return;
  if (listed["edges"].empty()) {
    if (!ctx.json()) std::cout << "no edge unused for " << a.unused_for << "\n";
    else std::cout << json{{"removed", json::array()}, {"kept", json::array()}}.dump(2) << "\n";
    return;
  }
  if (!a.yes) {
    show_stale(listed);
    if (!isatty(STDIN_FILENO)) {
      ctx.rc = fail("not removing without confirmation: pass --yes (stdin is not a terminal)", 2);
      return;
    }
    std::cout << "remove these " << listed["edges"].size() << " edges and their connections? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "yes") {
      std::cout << "nothing removed\n";
      ctx.rc = 1;
      return;
    }
  }
  p["edges"] = listed["edges"];
  ctx.rc = call(ctx, control::kEdgesPrune, p, json_or(ctx, [](const json& r) {
                  for (const auto& e : r["removed"]) std::cout << "removed " << str(e) << "\n";
                  for (const auto& e : r["kept"]) std::cout << "kept " << str(e["edge"]) << ": " << str(e["reason"]) << "\n";
                }));
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

  auto stale_args = std::make_shared<StaleArgs>();
  auto* stale = edges->add_subcommand("stale", "edges that carried no traffic for a period");
  stale->add_option("--unused-for", stale_args->unused_for, "the period, e.g. 30d")->required();
  stale->callback([&ctx, stale_args] {
    json p;
    if (!unused_for(ctx, *stale_args, p)) return;
    ctx.rc = call(ctx, control::kEdgesStale, p, json_or(ctx, show_stale));
  });

  auto prune_args = std::make_shared<StaleArgs>();
  auto* prune_cmd = edges->add_subcommand("prune", "remove the edges unused for a period (asks first)");
  prune_cmd->add_option("--unused-for", prune_args->unused_for, "the period, e.g. 30d")->required();
  prune_cmd->add_flag("--yes", prune_args->yes, "do not ask (for scripts)");
  prune_cmd->callback([&ctx, prune_args] { prune(ctx, *prune_args); });
}

}  // namespace topowall::cli
