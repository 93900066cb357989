// topology export|import|diff: the learned graph as a whole.
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "completion.hpp"
#include "topowall/control_methods.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::cli {
namespace {

// The graph in `file`; false, with ctx.rc 2, when it cannot be read or is not JSON.
bool read_graph(Ctx& ctx, const std::string& file, json& out) {
  std::ifstream in(file);
  if (!in) {
    ctx.rc = fail("cannot read " + file, 2);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = topology::parse_json(ss.str());
  if (!parsed) {
    ctx.rc = fail(file + " is " + parsed.error().message + "; expected the output of topology export --format json", 2);
    return false;
  }
  out = std::move(*parsed);
  return true;
}

void show_diff(const json& r) {
  for (const auto& e : r["only_in_file"]) std::cout << "- " << str(e) << "   (only in file)\n";
  for (const auto& e : r["only_live"]) std::cout << "+ " << str(e) << "   (only live)\n";
  for (const auto& e : r["state_changed"])
    std::cout << "~ " << str(e["edge"]) << "   " << str(e["file"]) << " -> " << str(e["live"]) << "\n";
}

void add_export(CLI::App& topo, Ctx& ctx) {
  auto* exp = topo.add_subcommand("export", "print the graph");
  auto format = std::make_shared<std::string>("json");
  complete_with(exp->add_option("--format", *format, "json, dot, mermaid, networkpolicy or html (the radar, one file)")
                    ->capture_default_str(),
                {"json", "dot", "mermaid", "networkpolicy", "html"});
  exp->callback([&ctx, format] {
    ctx.rc = call(ctx, control::kTopologyExport, {{"format", *format}}, [](const json& r) {
      if (r.is_string()) std::cout << r.get<std::string>();
      else std::cout << r.dump(2) << "\n";
    });
  });
}

// A command that sends the graph in a file (the export's JSON) to `method`.
void add_graph_command(CLI::App& topo, Ctx& ctx, const std::string& name, const std::string& help,
                       std::string_view method, Show show) {
  auto* cmd = topo.add_subcommand(name, help);
  auto file = std::make_shared<std::string>();
  cmd->add_option("file", *file, "the export's JSON")->required();
  cmd->callback([&ctx, file, method, show = std::move(show)] {
    json g;
    if (!read_graph(ctx, *file, g)) return;
    ctx.rc = call(ctx, method, {{"graph", g}}, show);
  });
}

}  // namespace

void add_topology(CLI::App& app, Ctx& ctx) {
  auto* topo = app.add_subcommand("topology", "the learned graph")->require_subcommand(1);
  add_export(*topo, ctx);
  add_graph_command(*topo, ctx, "import", "replace the graph with a reviewed one (validated first)",
                    control::kTopologyImport,
                    [](const json& r) { std::cout << "imported " << str(r["edges"]) << " edges\n"; });
  add_graph_command(*topo, ctx, "diff", "what differs between a stored graph and the live one", control::kTopologyDiff,
                    json_or(ctx, show_diff));
}

}  // namespace topowall::cli
