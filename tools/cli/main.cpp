// topowall: the operator CLI. Exit codes: 0 ok, 1 the agent refused or failed,
// 2 usage error, 3 the agent is unreachable.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client.hpp"
#include "table.hpp"
#include "topowall/topology/duration.hpp"

using nlohmann::json;
using namespace topowall;

namespace {

struct Ctx {
  std::string socket = "/run/topowall/topowall.sock";
  std::string output = "table";
  bool json() const { return output == "json"; }
};

int fail(const std::string& msg, int code) {
  std::cerr << "topowall: " << msg << "\n";
  return code;
}

// Call the agent; on success hand the result to `show`.
int call(const Ctx& ctx, const std::string& method, const json& params, const std::function<void(const json&)>& show) {
  cli::Client c(ctx.socket);
  auto r = c.call(method, params);
  if (!r) return fail(r.error().message, r.error().code ? 3 : 1);
  if (!r->value("ok", false)) {
    const auto& e = (*r)["error"];
    return fail(e.value("message", "request failed") + " [" + e.value("code", "error") + "]", 1);
  }
  show((*r)["result"]);
  return 0;
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

std::string port_text(const json& e) {
  auto proto = e.value("proto", "");
  if (proto == "icmp" || proto == "icmpv6") return proto + " type " + str(e["port"]);
  return proto + "/" + str(e["port"]);
}

void show_status(const json& s) {
  std::printf("mode:       %s\n", s.value("mode", "?").c_str());
  if (!s["mode_overrides"].empty()) {
    std::printf("overrides: ");
    for (auto it = s["mode_overrides"].begin(); it != s["mode_overrides"].end(); ++it)
      std::printf(" %s=%s", it.key().c_str(), str(*it).c_str());
    std::printf("\n");
  }
  std::printf("workloads:  %s (%s endpoints)\n", str(s["workloads"]).c_str(), str(s["endpoints"]).c_str());
  std::printf("edges:      %s\n", str(s["edges"]).c_str());
  std::printf("pending:    %s\n", str(s["pending"]).c_str());
  const auto& l = s["learning"];
  if (l.contains("remaining_seconds"))
    std::printf("learning:   %s left\n",
                topology::format_duration(std::chrono::seconds(l["remaining_seconds"].get<long long>())).c_str());
  std::printf("new edges:  %.1f/min over the last 5 minutes\n", l.value("new_edges_per_minute", 0.0));
  std::printf("discovery:  %s\n", s.value("discovery_synced", false) ? "synced" : "in progress");
}

void show_workloads(const json& ws) {
  cli::Table t({"WORKLOAD", "REPLICAS", "MODE", "ADDRESSES", "CONTAINERS"});
  for (const auto& w : ws) {
    std::string addrs, names;
    for (const auto& a : w["addresses"]) addrs += (addrs.empty() ? "" : ",") + str(a);
    for (const auto& c : w["containers"]) names += (names.empty() ? "" : ",") + str(c["name"]);
    t.row({str(w["name"]), str(w["replicas"]), str(w["mode"]), addrs, names});
  }
  std::cout << t.render();
}

void show_edges(const json& g) {
  cli::Table t({"SOURCE", "DESTINATION", "PORT", "STATE", "COUNT", "FIRST SEEN", "LAST SEEN"});
  for (const auto& e : g["edges"])
    t.row({str(e["src"]), str(e["dst"]), port_text(e), str(e["state"]), str(e["count"]),
           cli::relative_time(str(e["first_seen"])), cli::relative_time(str(e["last_seen"]))});
  std::cout << t.render();
}

void show_pending(const json& ps) {
  cli::Table t({"ID", "SOURCE", "DESTINATION", "PORT", "COUNT", "FIRST SEEN", "LAST SEEN"});
  for (const auto& p : ps)
    t.row({str(p["id"]), str(p["src"]), str(p["dst"]), port_text(p), str(p["count"]),
           cli::relative_time(str(p["first_seen"])), cli::relative_time(str(p["last_seen"]))});
  std::cout << t.render();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"topowall: inspect and steer the topowalld agent"};
  app.require_subcommand(1);
  app.fallthrough();
  Ctx ctx;
  app.add_option("--socket", ctx.socket, "agent control socket")->capture_default_str();
  app.add_option("-o,--output", ctx.output, "table or json")->check(CLI::IsMember({"table", "json"}));
  int rc = 0;

  auto* status = app.add_subcommand("status", "mode, counts, learning progress");
  status->callback([&] {
    rc = call(ctx, "status", json::object(), [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else show_status(r);
    });
  });

  auto* workloads = app.add_subcommand("workloads", "workloads and their replicas");
  workloads->callback([&] {
    rc = call(ctx, "workloads", json::object(), [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else show_workloads(r);
    });
  });

  auto* topo = app.add_subcommand("topology", "the learned graph")->require_subcommand(1);
  auto* exp = topo->add_subcommand("export", "print the graph");
  std::string format = "json";
  exp->add_option("--format", format, "json, dot or mermaid")->capture_default_str();
  exp->callback([&] {
    rc = call(ctx, "topology.export", {{"format", format}}, [&](const json& r) {
      if (r.is_string()) std::cout << r.get<std::string>();
      else std::cout << r.dump(2) << "\n";
    });
  });
  auto* edges = app.add_subcommand("edges", "the graph's edges")->require_subcommand(1);
  edges->add_subcommand("list", "list edges")->callback([&] {
    rc = call(ctx, "topology.export", {{"format", "json"}}, [&](const json& r) {
      if (ctx.json()) std::cout << r["edges"].dump(2) << "\n";
      else show_edges(r);
    });
  });

  auto* flows = app.add_subcommand("flows", "flows outside the graph")->require_subcommand(1);
  flows->add_subcommand("pending", "flows waiting for a decision, newest first")->callback([&] {
    rc = call(ctx, "flows.pending", json::object(), [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else show_pending(r);
    });
  });

  auto* rules = app.add_subcommand("rules", "the compiled nftables ruleset")->require_subcommand(1);
  rules->add_subcommand("show", "print the ruleset as nft text")->callback([&] {
    rc = call(ctx, "rules.show", json::object(), [&](const json& r) {
      if (ctx.json()) std::cout << r.dump() << "\n";
      else std::cout << str(r);
    });
  });

  auto* mode = app.add_subcommand("mode", "switch learn, monitor or enforce");
  std::string mode_name, workload, for_s;
  bool clear = false;
  mode->add_option("mode", mode_name, "learn, monitor or enforce")
      ->required()
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}));
  mode->add_option("--workload", workload, "only this workload");
  mode->add_option("--for", for_s, "with learn: learning window, e.g. 30m");
  mode->add_flag("--clear", clear, "with --workload: drop the override");
  mode->callback([&] {
    json p{{"mode", mode_name}};
    if (!workload.empty()) p["workload"] = workload;
    if (clear) p["clear"] = true;
    if (!for_s.empty()) {
      auto d = topology::parse_duration(for_s);
      if (!d) {
        rc = fail("--for '" + for_s + "' is not a duration like 30m", 2);
        return;
      }
      p["for_seconds"] = d->count();
    }
    rc = call(ctx, "mode.set", p, [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else show_status(r);
    });
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return rc;
}
