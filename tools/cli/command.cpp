#include <cstdio>
#include <iostream>

#include "client.hpp"
#include "commands.hpp"
#include "topowall/topology/duration.hpp"

namespace topowall::cli {

int fail(const std::string& msg, int code) {
  std::cerr << "topowall: " << msg << "\n";
  return code;
}

int call(const Ctx& ctx, std::string_view method, const json& params, const Show& show, int pass_fd) {
  Client c(ctx.socket);
  auto r = c.call(std::string(method), params, pass_fd);
  if (!r) return fail(r.error().message, r.error().code ? 3 : 1);
  if (!r->value("ok", false)) {
    const auto& e = (*r)["error"];
    return fail(e.value("message", "request failed") + " [" + e.value("code", "error") + "]", 1);
  }
  show((*r)["result"]);
  return 0;
}

Show json_or(const Ctx& ctx, Show human) {
  return [&ctx, human = std::move(human)](const json& r) {
    if (ctx.json()) std::cout << r.dump(2) << "\n";
    else human(r);
  };
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

std::string port_text(const json& e) {
  auto proto = e.value("proto", "");
  if (proto == "icmp" || proto == "icmpv6") return proto + " type " + str(e["port"]);
  return proto + "/" + str(e["port"]);
}

// Per workload: the convergence verdict and what learning did not trust.
static void show_coverage(const json& cov) {
  if (cov.empty()) return;
  std::size_t converged = 0;
  for (const auto& [w, c] : cov.items()) converged += c.value("converged", false);
  std::printf("converged:  %zu of %zu workloads\n", converged, cov.size());
  for (const auto& [w, c] : cov.items()) {
    auto verdict = c.value("verdict", std::string("?"));
    if (c.contains("quarantine") && c["quarantine"].is_string()) verdict += " (" + str(c["quarantine"]) + ")";
    const auto last = c.contains("since_last_new_edge_seconds") && c["since_last_new_edge_seconds"].is_number()
                          ? topology::format_duration(std::chrono::seconds(c["since_last_new_edge_seconds"].get<long long>())) + " ago"
                          : std::string("never");
    std::printf("  %-20s %-22s last new edge %s, %s peers, %s unanswered, %s refused, %s held\n", w.c_str(),
                verdict.c_str(), last.c_str(), str(c.value("peers", json(0))).c_str(),
                str(c.value("unanswered", json(0))).c_str(), str(c.value("refused", json(0))).c_str(),
                str(c.value("held", json(0))).c_str());
  }
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
  show_coverage(l.value("coverage", json::object()));
  std::printf("discovery:  %s\n", s.value("discovery_synced", false) ? "synced" : "in progress");
  if (s.contains("cluster_connected"))
    std::printf("cluster:    %s, %s remote endpoints\n",
                s.value("cluster_connected", false) ? "connected" : "disconnected (remote endpoints as last known)",
                str(s.value("remote_endpoints", json(0))).c_str());
}

std::shared_ptr<FlowKey> add_flow_key(CLI::App& cmd, const std::string& src_help, const std::string& dst_help,
                                      const std::string& port_help) {
  auto key = std::make_shared<FlowKey>();
  cmd.add_option("src", key->src, src_help)->required();
  cmd.add_option("dst", key->dst, dst_help)->required();
  cmd.add_option("proto_port", key->proto_port, port_help)->required();
  return key;
}

bool flow_key_params(Ctx& ctx, const FlowKey& key, json& params) {
  params = json{{"src", key.src}, {"dst", key.dst}};
  auto slash = key.proto_port.find('/');
  bool ok = slash != std::string::npos;
  if (ok) {
    params["proto"] = key.proto_port.substr(0, slash);
    try {
      params["port"] = std::stoul(key.proto_port.substr(slash + 1));
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) ctx.rc = fail("expected PROTO/PORT such as tcp/8080", 2);
  return ok;
}

bool put_for_seconds(Ctx& ctx, const std::string& text, const char* example, json& params) {
  if (text.empty()) return true;
  auto d = topology::parse_duration(text);
  if (!d) {
    ctx.rc = fail("--for '" + text + "' is not a duration like " + example, 2);
    return false;
  }
  params["for_seconds"] = d->count();
  return true;
}

}  // namespace topowall::cli
