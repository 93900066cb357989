// flows pending|approve|deny|watch: flows outside the graph, and the decisions on them.
#include <cstdint>
#include <iostream>
#include <vector>

#include "client.hpp"
#include "cluster_write.hpp"
#include "commands.hpp"
#include "table.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::cli {
namespace {

void show_pending(const json& ps) {
  Table t({"ID", "SOURCE", "DESTINATION", "PORT", "COUNT", "FIRST SEEN", "LAST SEEN", "REASON"});
  for (const auto& p : ps)
    t.row({str(p["id"]), str(p["src"]), str(p["dst"]), port_text(p), str(p["count"]), relative_time(str(p["first_seen"])),
           relative_time(str(p["last_seen"])), p.value("reason", "-")});
  std::cout << t.render();
}

// flows approve / deny: by id, or --all / --src / --dst.
struct DecideArgs {
  std::vector<std::uint64_t> ids;
  bool all = false;
  std::string src, dst, comment, approve_for;
};

void show_decided(const json& r) {
  for (const char* state : {"approved", "denied"})
    if (r.contains(state))
      for (const auto& e : r[state]) std::cout << state << ": " << str(e) << "\n";
}

void decide(Ctx& ctx, const DecideArgs& a, const EtcdArgs& etcd, std::string_view method) {
  json p = json::object();
  if (!a.ids.empty()) p["ids"] = a.ids;
  if (a.all) p["all"] = true;
  if (!a.src.empty()) p["src"] = a.src;
  if (!a.dst.empty()) p["dst"] = a.dst;
  if (!a.comment.empty()) p["comment"] = a.comment;
  if (!put_for_seconds(ctx, a.approve_for, "7d", p)) return;
  json answer;
  auto show = json_or(ctx, show_decided);
  ctx.rc = call(ctx, method, p, [&](const json& r) {
    answer = r;
    show(r);
  });
  if (ctx.rc == 0) ctx.rc = share_decisions(etcd, answer);
}

void add_decide(CLI::App& flows, Ctx& ctx, const std::string& name, std::string_view method, const std::string& help) {
  auto* c = flows.add_subcommand(name, help);
  auto a = std::make_shared<DecideArgs>();
  c->add_option("ids", a->ids, "pending flow ids");
  c->add_flag("--all", a->all, "every pending flow");
  c->add_option("--src", a->src, "pending flows from this workload");
  c->add_option("--dst", a->dst, "pending flows to this workload");
  c->add_option("--comment", a->comment, "why (kept with the edge)");
  if (method == control::kFlowsApprove) c->add_option("--for", a->approve_for, "expire the approval after, e.g. 7d");
  auto etcd = add_etcd_flags(*c);
  c->callback([&ctx, a, etcd, method] { decide(ctx, *a, *etcd, method); });
}

// Streams events until the agent or the connection ends; returns the exit code.
int watch(const Ctx& ctx) {
  Client c(ctx.socket);
  auto r = c.call(std::string(control::kFlowsWatch));
  if (!r) return fail(r.error().message, 3);
  if (!r->value("ok", false)) return fail((*r)["error"].value("message", "refused"), 1);
  for (;;) {
    auto ev = c.next();
    if (!ev) return fail(ev.error().message, 3);
    if (ctx.json()) {
      std::cout << ev->dump() << std::endl;
      continue;
    }
    std::cout << str((*ev)["time"]) << "  " << str((*ev)["event"]) << "  " << str((*ev)["src"]) << " -> "
              << str((*ev)["dst"]) << "  " << port_text(*ev) << "  " << str((*ev)["verdict"]) << std::endl;
  }
}

}  // namespace

void add_flows(CLI::App& app, Ctx& ctx) {
  auto* flows = app.add_subcommand("flows", "flows outside the graph")->require_subcommand(1);
  flows->add_subcommand("pending", "flows waiting for a decision, newest first")->callback([&ctx] {
    ctx.rc = call(ctx, control::kFlowsPending, json::object(), json_or(ctx, show_pending));
  });
  add_decide(*flows, ctx, "approve", control::kFlowsApprove, "add pending flows to the graph as approved");
  add_decide(*flows, ctx, "deny", control::kFlowsDeny, "keep pending flows blocked, without further pending entries");
  flows->add_subcommand("watch", "stream flows and verdicts with workload names")->callback([&ctx] {
    ctx.rc = watch(ctx);
  });
}

}  // namespace topowall::cli
