// explain: would a flow pass, and why.
#include <iostream>

#include "commands.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {

void add_explain(CLI::App& app, Ctx& ctx) {
  auto* explain = app.add_subcommand("explain", "would this flow pass, and why");
  auto key = add_flow_key(*explain, "workload name or address", "workload name or address", "e.g. tcp/8080 or icmp/8");
  explain->callback([&ctx, key] {
    json p;
    if (!flow_key_params(ctx, *key, p)) return;
    ctx.rc = call(ctx, control::kExplain, p, json_or(ctx, [](const json& r) {
                    std::cout << str(r["verdict"]) << ": " << str(r["reason"]) << " (mode " << str(r["mode"]) << ")\n";
                  }));
  });
}

}  // namespace topowall::cli
