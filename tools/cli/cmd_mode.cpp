// mode: switch learn, monitor or enforce, globally or for one workload.
#include "commands.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {
namespace {

struct ModeArgs {
  std::string mode, workload, learn_for;
  bool clear = false;
};

}  // namespace

void add_mode(CLI::App& app, Ctx& ctx) {
  auto* mode = app.add_subcommand("mode", "switch learn, monitor or enforce");
  auto a = std::make_shared<ModeArgs>();
  mode->add_option("mode", a->mode, "learn, monitor or enforce")
      ->required()
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}));
  mode->add_option("--workload", a->workload, "only this workload");
  mode->add_option("--for", a->learn_for, "with learn: learning window, e.g. 30m");
  mode->add_flag("--clear", a->clear, "with --workload: drop the override");
  mode->callback([&ctx, a] {
    json p{{"mode", a->mode}};
    if (!a->workload.empty()) p["workload"] = a->workload;
    if (a->clear) p["clear"] = true;
    if (!put_for_seconds(ctx, a->learn_for, "30m", p)) return;
    ctx.rc = call(ctx, control::kModeSet, p, json_or(ctx, show_status));
  });
}

}  // namespace topowall::cli
