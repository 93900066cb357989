// rules show: the compiled nftables ruleset.
#include <iostream>

#include "commands.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {

void add_rules(CLI::App& app, Ctx& ctx) {
  auto* rules = app.add_subcommand("rules", "the compiled nftables ruleset")->require_subcommand(1);
  rules->add_subcommand("show", "print the ruleset as nft text")->callback([&ctx] {
    ctx.rc = call(ctx, control::kRulesShow, json::object(), [&ctx](const json& r) {
      if (ctx.json()) std::cout << r.dump() << "\n";
      else std::cout << str(r);
    });
  });
}

}  // namespace topowall::cli
