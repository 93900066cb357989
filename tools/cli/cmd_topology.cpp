// topology export|import|diff: the learned graph as a whole. The graph travels as a descriptor passed with
// the request (docs/PROTOCOL.md, "Large graphs"), so its size is not bound by the 1 MiB request line.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "client.hpp"
#include "commands.hpp"
#include "common/fd.hpp"
#include "completion.hpp"
#include "graph_file.hpp"
#include "topowall/control_methods.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::cli {
namespace {

bool read_all(int fd, std::string& out) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

UniqueFd open_graph(Ctx& ctx, const std::string& file) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  std::string text;
  if (!fd || !read_all(fd.get(), text)) {
    ctx.rc = fail("cannot read " + file, 2);
    return {};
  }
  // The nesting, checked with a scan (an 18 MB graph in a few ms): a hostile file is named here (exit 2)
  // without contacting the agent, which checks everything again, syntax included.
  if (topology::nested_deeper_than(text, topology::kMaxJsonDepth)) {
    ctx.rc = fail(file + " is JSON nested deeper than " + std::to_string(topology::kMaxJsonDepth) +
                      " levels of arrays and objects; expected the output of topology export --format json",
                  2);
    return {};
  }
  struct stat st{};
  if (fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)) return fd;
  UniqueFd copy(memfd_create("topowall-graph", MFD_CLOEXEC));
  for (std::size_t off = 0; copy && off < text.size();) {
    ssize_t n = ::write(copy.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) copy.reset();
    else off += static_cast<std::size_t>(n);
  }
  if (!copy) ctx.rc = fail("cannot copy " + file + " into memory: " + std::strerror(errno), 1);
  return copy;
}

namespace {

// The export streamed through a pipe the agent writes into, to stdout as it arrives.
int export_to_stdout(const Ctx& ctx, const std::string& format) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + std::strerror(errno), 1);
  UniqueFd rd(p[0]), wr(p[1]);
  Client c(ctx.socket);
  auto r = c.call(std::string(control::kTopologyExport), {{"format", format}, {"fd", true}}, wr.get());
  wr.reset();  // the agent holds the only write end now: its close is our end of the text
  if (!r) return fail(r.error().message, r.error().code ? 3 : 1);
  if (!r->value("ok", false)) {
    const auto& e = (*r)["error"];
    return fail(e.value("message", "request failed") + " [" + e.value("code", "error") + "]", 1);
  }
  std::cout.flush();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::string("reading the export: ") + std::strerror(errno), 1);
    if (n == 0) return 0;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(STDOUT_FILENO, buf + off, static_cast<std::size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail(std::string("writing the export: ") + std::strerror(errno), 1);
      off += w;
    }
  }
}

void show_diff(const json& r) {
  for (const auto& e : r["only_in_file"]) std::cout << "- " << str(e) << "   (only in file)\n";
  for (const auto& e : r["only_live"]) std::cout << "+ " << str(e) << "   (only live)\n";
  for (const auto& e : r["state_changed"])
    std::cout << "~ " << str(e["edge"]) << "   " << str(e["file"]) << " -> " << str(e["live"]) << "\n";
}

void add_export(CLI::App& topo, Ctx& ctx) {
  auto* exp = topo.add_subcommand("export", "print the graph");
  auto format = std::make_shared<std::string>("json");
  complete_with(exp->add_option("--format", *format, "json, dot, mermaid, networkpolicy or html (the radar, one file)")
                    ->capture_default_str(),
                {"json", "dot", "mermaid", "networkpolicy", "html"});
  exp->callback([&ctx, format] { ctx.rc = export_to_stdout(ctx, *format); });
}

// A command that sends the graph in a file (the export's JSON) to `method`.
void add_graph_command(CLI::App& topo, Ctx& ctx, const std::string& name, const std::string& help,
                       std::string_view method, Show show) {
  auto* cmd = topo.add_subcommand(name, help);
  auto file = std::make_shared<std::string>();
  cmd->add_option("file", *file, "the export's JSON")->required();
  cmd->callback([&ctx, file, method, show = std::move(show)] {
    auto fd = open_graph(ctx, *file);
    if (!fd) return;
    ctx.rc = call(ctx, method, {{"fd", true}}, show, fd.get());
  });
}

}  // namespace

void add_topology(CLI::App& app, Ctx& ctx) {
  auto* topo = app.add_subcommand("topology", "the learned graph")->require_subcommand(1);
  add_export(*topo, ctx);
  add_graph_command(*topo, ctx, "import", "replace the graph with a reviewed one (validated first)",
                    control::kTopologyImport,
                    [](const json& r) { std::cout << "imported " << str(r["edges"]) << " edges\n"; });
  add_graph_command(*topo, ctx, "diff", "what differs between a stored graph and the live one", control::kTopologyDiff,
                    json_or(ctx, show_diff));
}

}  // namespace topowall::cli
