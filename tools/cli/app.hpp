// The CLI's command tree, built apart from main so that tests can walk it without running it.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace topowall::cli {

// What every command shares: the global options, and the exit code the command chose
// (0 ok, 1 the agent refused or failed, 2 usage error, 3 the agent is unreachable).
struct Ctx {
  std::string socket = "/run/topowall/topowall.sock";
  std::string output = "table";
  int rc = 0;
  bool json() const { return output == "json"; }
};

// Every command, bound to `ctx` (which must outlive the app); parsing runs the chosen one.
std::unique_ptr<CLI::App> build_app(Ctx& ctx);

}  // namespace topowall::cli
