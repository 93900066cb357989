#include "app.hpp"

#include "commands.hpp"

namespace topowall::cli {

std::unique_ptr<CLI::App> build_app(Ctx& ctx) {
  auto app = std::make_unique<CLI::App>("topowall: inspect and steer the topowalld agent");
  app->require_subcommand(1);
  app->fallthrough();
  app->add_option("--socket", ctx.socket, "agent control socket")->capture_default_str();
  app->add_option("-o,--output", ctx.output, "table or json")->check(CLI::IsMember({"table", "json"}));
  // In the order `topowall --help` lists them.
  add_status(*app, ctx);
  add_topology(*app, ctx);
  add_edges(*app, ctx);
  add_flows(*app, ctx);
  add_explain(*app, ctx);
  add_completion(*app);
  add_rules(*app, ctx);
  add_mode(*app, ctx);
  add_replay(*app, ctx);
  return app;
}

}  // namespace topowall::cli
