// topowall: the operator CLI. Exit codes: 0 ok, 1 the agent refused or failed,
// 2 usage error, 3 the agent is unreachable.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client.hpp"
#include "table.hpp"
#include "topowall/topology/duration.hpp"
#include "topowall/topology/json_limits.hpp"

using nlohmann::json;
using namespace topowall;

namespace {

const char* kBashCompletion = R"(# bash completion for topowall: source <(topowall completion bash)
_topowall() {
  local cur prev words cword
  _init_completion || return
  local top="status workloads topology edges flows mode rules explain completion"
  case "${words[1]}" in
    topology) COMPREPLY=($(compgen -W "export import diff" -- "$cur")); [[ $prev == --format ]] && COMPREPLY=($(compgen -W "json dot mermaid networkpolicy" -- "$cur")); return;;
    edges) COMPREPLY=($(compgen -W "list remove" -- "$cur")); return;;
    flows) COMPREPLY=($(compgen -W "pending approve deny watch" -- "$cur")); return;;
    mode) COMPREPLY=($(compgen -W "learn monitor enforce --workload --for --clear" -- "$cur")); return;;
    rules) COMPREPLY=($(compgen -W "show" -- "$cur")); return;;
  esac
  COMPREPLY=($(compgen -W "$top --socket -o --output --help" -- "$cur"))
}
complete -F _topowall topowall
)";

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
  if (s.contains("cluster_connected"))
    std::printf("cluster:    %s, %s remote endpoints\n",
                s.value("cluster_connected", false) ? "connected" : "disconnected (remote endpoints as last known)",
                str(s.value("remote_endpoints", json(0))).c_str());
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
  exp->add_option("--format", format, "json, dot, mermaid or networkpolicy")->capture_default_str();
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

  // flows approve / deny: by id, or --all / --src / --dst.
  std::vector<std::uint64_t> flow_ids;
  bool flows_all = false;
  std::string fsrc, fdst, comment, approve_for;
  auto decide = [&](const char* method) {
    json p = json::object();
    if (!flow_ids.empty()) p["ids"] = flow_ids;
    if (flows_all) p["all"] = true;
    if (!fsrc.empty()) p["src"] = fsrc;
    if (!fdst.empty()) p["dst"] = fdst;
    if (!comment.empty()) p["comment"] = comment;
    if (!approve_for.empty()) {
      auto d = topology::parse_duration(approve_for);
      if (!d) {
        rc = fail("--for '" + approve_for + "' is not a duration like 7d", 2);
        return;
      }
      p["for_seconds"] = d->count();
    }
    rc = call(ctx, method, p, [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else
        for (auto it = r.begin(); it != r.end(); ++it)
          for (const auto& e : *it) std::cout << it.key() << ": " << str(e) << "\n";
    });
  };
  for (auto [name, method, help] : {std::tuple{"approve", "flows.approve", "add pending flows to the graph as approved"},
                                    std::tuple{"deny", "flows.deny", "keep pending flows blocked, without further pending entries"}}) {
    auto* c = flows->add_subcommand(name, help);
    c->add_option("ids", flow_ids, "pending flow ids");
    c->add_flag("--all", flows_all, "every pending flow");
    c->add_option("--src", fsrc, "pending flows from this workload");
    c->add_option("--dst", fdst, "pending flows to this workload");
    c->add_option("--comment", comment, "why (kept with the edge)");
    if (std::string(name) == "approve") c->add_option("--for", approve_for, "expire the approval after, e.g. 7d");
    std::string m = method;
    c->callback([&, m] { decide(m.c_str()); });
  }
  flows->add_subcommand("watch", "stream flows and verdicts with workload names")->callback([&] {
    cli::Client c(ctx.socket);
    auto r = c.call("flows.watch");
    if (!r) {
      rc = fail(r.error().message, 3);
      return;
    }
    if (!r->value("ok", false)) {
      rc = fail((*r)["error"].value("message", "refused"), 1);
      return;
    }
    for (;;) {
      auto ev = c.next();
      if (!ev) {
        rc = fail(ev.error().message, 3);
        return;
      }
      if (ctx.json()) {
        std::cout << ev->dump() << std::endl;
        continue;
      }
      std::cout << str((*ev)["time"]) << "  " << str((*ev)["event"]) << "  " << str((*ev)["src"]) << " -> "
                << str((*ev)["dst"]) << "  " << port_text(*ev) << "  " << str((*ev)["verdict"]) << std::endl;
    }
  });

  auto* explain = app.add_subcommand("explain", "would this flow pass, and why");
  std::string esrc, edst, eport;
  explain->add_option("src", esrc, "workload name or address")->required();
  explain->add_option("dst", edst, "workload name or address")->required();
  explain->add_option("proto_port", eport, "e.g. tcp/8080 or icmp/8")->required();
  auto split_port = [&](const std::string& pp, json& p) -> bool {
    auto slash = pp.find('/');
    if (slash == std::string::npos) return false;
    p["proto"] = pp.substr(0, slash);
    try {
      p["port"] = std::stoul(pp.substr(slash + 1));
    } catch (...) {
      return false;
    }
    return true;
  };
  explain->callback([&] {
    json p{{"src", esrc}, {"dst", edst}};
    if (!split_port(eport, p)) {
      rc = fail("expected PROTO/PORT such as tcp/8080", 2);
      return;
    }
    rc = call(ctx, "explain", p, [&](const json& r) {
      if (ctx.json()) std::cout << r.dump(2) << "\n";
      else std::cout << str(r["verdict"]) << ": " << str(r["reason"]) << " (mode " << str(r["mode"]) << ")\n";
    });
  });

  auto* remove = edges->add_subcommand("remove", "revoke an edge and its established connections");
  std::string rsrc, rdst, rport;
  remove->add_option("src", rsrc, "source workload")->required();
  remove->add_option("dst", rdst, "destination workload")->required();
  remove->add_option("proto_port", rport, "e.g. tcp/8080")->required();
  remove->callback([&] {
    json p{{"src", rsrc}, {"dst", rdst}};
    if (!split_port(rport, p)) {
      rc = fail("expected PROTO/PORT such as tcp/8080", 2);
      return;
    }
    rc = call(ctx, "edges.remove", p, [&](const json& r) { std::cout << "removed " << str(r["removed"]) << "\n"; });
  });

  std::string graph_file;
  auto read_graph = [&](json& out) -> bool {
    std::ifstream in(graph_file);
    if (!in) {
      rc = fail("cannot read " + graph_file, 2);
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = topology::parse_json(ss.str());
    if (!parsed) {
      rc = fail(graph_file + " is " + parsed.error().message + "; expected the output of topology export --format json",
                2);
      return false;
    }
    out = std::move(*parsed);
    return true;
  };
  auto* imp = topo->add_subcommand("import", "replace the graph with a reviewed one (validated first)");
  imp->add_option("file", graph_file, "the export's JSON")->required();
  imp->callback([&] {
    json g;
    if (!read_graph(g)) return;
    rc = call(ctx, "topology.import", {{"graph", g}}, [&](const json& r) {
      std::cout << "imported " << str(r["edges"]) << " edges\n";
    });
  });
  auto* dif = topo->add_subcommand("diff", "what differs between a stored graph and the live one");
  dif->add_option("file", graph_file, "the export's JSON")->required();
  dif->callback([&] {
    json g;
    if (!read_graph(g)) return;
    rc = call(ctx, "topology.diff", {{"graph", g}}, [&](const json& r) {
      if (ctx.json()) {
        std::cout << r.dump(2) << "\n";
        return;
      }
      for (const auto& e : r["only_in_file"]) std::cout << "- " << str(e) << "   (only in file)\n";
      for (const auto& e : r["only_live"]) std::cout << "+ " << str(e) << "   (only live)\n";
      for (const auto& e : r["state_changed"])
        std::cout << "~ " << str(e["edge"]) << "   " << str(e["file"]) << " -> " << str(e["live"]) << "\n";
    });
  });

  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  std::string shell = "bash";
  completion->add_option("shell", shell, "bash")->check(CLI::IsMember({"bash"}));
  completion->callback([&] { std::cout << kBashCompletion; });

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
  } catch (const std::exception& e) {  // e.g. an agent of another version answering with other fields
    std::cerr << "topowall: unexpected answer from the agent (" << e.what()
              << "); are topowalld and topowall the same version? `topowall -o json ...` shows the raw answer\n";
    return 1;
  }
  return rc;
}
