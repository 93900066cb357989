// The command groups of the CLI, one file each (cmd_*.cpp), and what they share (command.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "app.hpp"

namespace topowall::cli {

using nlohmann::json;
using Show = std::function<void(const json&)>;

// Each adds its subcommands to `app`; the callbacks set ctx.rc.
void add_status(CLI::App& app, Ctx& ctx);    // status, workloads
void add_topology(CLI::App& app, Ctx& ctx);  // topology export|import|diff
void add_edges(CLI::App& app, Ctx& ctx);     // edges list|remove
void add_flows(CLI::App& app, Ctx& ctx);     // flows pending|approve|deny|watch
void add_explain(CLI::App& app, Ctx& ctx);   // explain
void add_completion(CLI::App& app);          // completion
void add_rules(CLI::App& app, Ctx& ctx);     // rules show
void add_mode(CLI::App& app, Ctx& ctx);      // mode
void add_replay(CLI::App& app, Ctx& ctx);    // replay

// Prints "topowall: msg" to stderr; returns `code`.
int fail(const std::string& msg, int code);
// Calls the agent (passing `pass_fd` along, if any); on success hands the result to `show` and returns
// 0, else the exit code.
int call(const Ctx& ctx, std::string_view method, const json& params, const Show& show, int pass_fd = -1);
// Shows a result as indented JSON with `-o json`, else through `human`.
Show json_or(const Ctx& ctx, Show human);

std::string str(const json& j);
// "tcp/8080", or "icmp type 8", from an object with proto and port.
std::string port_text(const json& e);
void show_status(const json& s);

// SRC DST PROTO/PORT, the positionals of `explain` and `edges remove`.
struct FlowKey {
  std::string src, dst, proto_port;
};
std::shared_ptr<FlowKey> add_flow_key(CLI::App& cmd, const std::string& src_help, const std::string& dst_help,
                                      const std::string& port_help);
// {src, dst, proto, port}; false, with ctx.rc 2, when PROTO/PORT is not one.
bool flow_key_params(Ctx& ctx, const FlowKey& key, json& params);
// Sets params.for_seconds from a `--for` duration (nothing when it is empty); false, with
// ctx.rc 2, when it is not a duration. `example` is named in the message (e.g. "7d").
bool put_for_seconds(Ctx& ctx, const std::string& text, const char* example, json& params);

}  // namespace topowall::cli
