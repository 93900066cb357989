// replay: the flow journal judged against a graph file, or the live graph plus proposed approvals.
#include <iostream>

#include "commands.hpp"
#include "graph_file.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"
#include "topowall/topology/duration.hpp"

namespace topowall::cli {
namespace {

struct ReplayArgs {
  std::string file, since = "24h";
  std::vector<std::uint64_t> approve;
  std::uint64_t limit = 1000;
};

void show_group(const json& g, const char* verdict) {
  std::cout << str(g["flows"]) << " flows would be " << verdict << " (" << g["edges"].size() + g["omitted"].get<std::size_t>()
            << " edges)\n";
  if (g["edges"].empty()) return;
  Table t({"SOURCE", "DESTINATION", "PORT", "FLOWS", "BLOCKED THEN", "FIRST", "LAST"});
  for (const auto& e : g["edges"])
    t.row({str(e["src"]), str(e["dst"]), port_text(e), str(e["flows"]), str(e["recorded_blocked"]),
           relative_time(str(e["first"])), relative_time(str(e["last"]))});
  std::cout << t.render();
  if (g["omitted"].get<std::size_t>() > 0) std::cout << "(" << str(g["omitted"]) << " more edges: raise --limit)\n";
}

void show_replay(const json& r) {
  std::cout << "replayed " << str(r["records"]) << " journal records since " << str(r["since"]) << "\n\n";
  show_group(r["blocked"], "blocked");
  std::cout << "\n";
  show_group(r["allowed"], "allowed");
}

}  // namespace

void add_replay(CLI::App& app, Ctx& ctx) {
  auto a = std::make_shared<ReplayArgs>();
  auto* cmd = app.add_subcommand("replay", "which recorded flows a graph would have blocked or allowed");
  cmd->add_option("file", a->file, "a graph (the export's JSON); without it, the live graph");
  cmd->add_option("--since", a->since, "how far back, e.g. 24h, 7d")->capture_default_str();
  cmd->add_option("--approve", a->approve, "a pending flow id to count as approved (repeatable; live graph only)");
  cmd->add_option("--limit", a->limit, "edges listed per verdict, most flows first")
      ->capture_default_str()
      ->check(CLI::Range(1, 5000));
  cmd->callback([&ctx, a] {
    auto since = topology::parse_duration(a->since);
    if (!since) {
      ctx.rc = fail("--since '" + a->since + "' is not a duration like 24h", 2);
      return;
    }
    if (!a->file.empty() && !a->approve.empty()) {
      ctx.rc = fail("--approve applies to the live graph; edit FILE instead", 2);
      return;
    }
    json p{{"since_seconds", since->count()}, {"limit", a->limit}};
    if (!a->approve.empty()) p["approve"] = a->approve;
    UniqueFd fd;
    if (!a->file.empty()) {
      fd = open_graph(ctx, a->file);
      if (!fd) return;
      p["fd"] = true;
    }
    ctx.rc = call(ctx, control::kReplay, p, json_or(ctx, show_replay), fd ? fd.get() : -1);
  });
}

}  // namespace topowall::cli
