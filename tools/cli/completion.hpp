// Shell completion generated from the CLI's own command tree, so it cannot drift from it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace topowall::cli {

// The bash completion script for `app` and everything below it (`topowall completion bash`).
// Offers each command's subcommands, options and the choices of its positionals; after an
// option, its choices. Choices come from an IsMember check or from complete_with.
std::string bash_completion(CLI::App& app);

// Names the values the completion offers for `opt` without checking them (CLI11 keeps them
// on the option as a validator that accepts everything and adds nothing to --help).
CLI::Option* complete_with(CLI::Option* opt, const std::vector<std::string>& words);

}  // namespace topowall::cli
