// Section 7: the radar in headless Chromium on a synthetic graph read by the import's parser and served
// by the agent's HTTP server code in-process: time to the first complete render and the canvas time of
// one frame while panning, at 500 and 5,000 workloads (4 edges each), beside an empty graph (the page's
// own cost) measured in the same run. In-process, because a 20,000-edge graph is larger than the control
// socket's 1 MiB request limit (`topology import` of big graphs is its own change).
#include <fstream>
#include <set>
#include <tuple>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "chromium.hpp"
#include "common.hpp"
#include "metrics/http_server.hpp"
#include "topowall/topology/radar.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

// `workloads` in namespaces of 50, each with 4 edges to others (mostly within its namespace, as services
// are): 80% learned, 12% approved, 8% denied. Deterministic, so runs compare.
json synthetic_graph(std::size_t workloads) {
  json ws = json::array(), es = json::array();
  for (std::size_t i = 0; i < workloads; ++i)
    ws.push_back({{"name", fmt::format("w{}", i)}, {"labels", {{"namespace", fmt::format("ns{}", i / 50)}}}});
  std::uint64_t x = 88172645463325252ull;
  auto rnd = [&x] { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
  std::set<std::tuple<std::size_t, std::size_t, int>> seen;
  while (workloads > 1 && seen.size() < workloads * 4) {
    const std::size_t a = rnd() % workloads;
    const std::size_t b = rnd() % 5 ? (a / 50) * 50 + rnd() % 50 : rnd() % workloads;
    const int port = 8000 + static_cast<int>(rnd() % 8);
    if (b >= workloads || a == b || !seen.insert({a, b, port}).second) continue;
    const auto r = rnd() % 100;
    es.push_back({{"src", fmt::format("w{}", a)}, {"dst", fmt::format("w{}", b)}, {"proto", "tcp"}, {"port", port},
                  {"state", r < 80 ? "learned" : r < 92 ? "approved" : "denied"}, {"count", 1 + rnd() % 1000},
                  {"first_seen", fmt::format("2026-01-{:02}T00:00:00Z", 1 + rnd() % 28)},
                  {"last_seen", "2026-01-29T00:00:00Z"}});
  }
  return {{"version", 1}, {"workloads", ws}, {"edges", es}};
}

struct Figures {
  double first_model_ms = -1, first_render_ms = -1, pan_avg = -1, pan_p95 = -1, expand_ms = -1, pan_all_avg = -1;
  int drawn = 0, drawn_all = 0;
};

// The radar server as topowalld runs it, on its own loop thread, serving `graph`.
struct Served {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  topology::Graph graph;
  topology::ModeTable modes;
  metrics::MetricsServer server{io, [] { return json::object(); }};
  std::thread thread;
  explicit Served(topology::Graph g) : graph(std::move(g)) {
    server.set_radar([this] { return topology::radar_model({graph, nullptr, &modes, json::array(), Clock::now()}); });
  }
  ~Served() {
    boost::asio::post(io, [this] { server.stop(); });
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

Figures measure(const Options& o, std::size_t workloads) {
  Figures f;
  auto g = topology::graph_from_json(synthetic_graph(workloads));
  if (!checked(g, fmt::format("radar: reading the {}-workload graph", workloads))) return f;
  for (std::size_t i = 0; i + 1 < workloads; i += 20)  // and a pending flow for every 20 workloads
    (void)g->observe_pending({fmt::format("w{}", i), fmt::format("w{}", i + 1), Proto::tcp, 9999}, Clock::now(), {});
  Served served(std::move(*g));
  if (!checked(served.server.start("127.0.0.1:0"), "radar: listening")) return f;
  served.thread = std::thread([&served] { served.io.run(); });
  Chromium b;
  auto st = b.start();
  if (st) st = b.navigate(fmt::format("http://127.0.0.1:{}/radar", served.server.port()));
  if (!st || !b.wait_for("document.body.dataset.firstRenderMs", 120000)) {
    out(fmt::format("radar: the page did not render {} workloads: FAILED {}\n", workloads, st ? "" : st.error().message));
    return f;
  }
  f.first_render_ms = std::stod(b.eval("document.body.dataset.firstRenderMs")->get<std::string>());
  f.first_model_ms = std::stod(b.eval("document.body.dataset.firstModelMs")->get<std::string>());
  f.drawn = std::stoi(b.eval("document.body.dataset.radarNodes")->get<std::string>());
  const int frames = o.smoke ? 10 : 60;
  if (auto p = b.eval(fmt::format("window.radar.pan({})", frames)); p && p->is_object()) {
    f.pan_avg = (*p)["avg"].get<double>();
    f.pan_p95 = (*p)["p95"].get<double>();
  }
  if (workloads > 1500) {  // collapsed by default: what opening every island costs
    auto t = b.eval("(() => { const s = performance.now(); const n = window.radar.expandAll(); "
                    "return [performance.now() - s, n]; })()");
    if (t && t->is_array()) {
      f.expand_ms = (*t)[0].get<double>();
      f.drawn_all = (*t)[1].get<int>();
    }
    if (auto p = b.eval(fmt::format("window.radar.pan({})", frames)); p && p->is_object())
      f.pan_all_avg = (*p)["avg"].get<double>();
  }
  return f;
}

}  // namespace

void radar(const Options& o) {
  out("\n## 7. Radar: first render and panning in headless Chromium\n\n");
  if (Chromium::binary().empty()) {
    out("chromium is not installed (tools/install-deps.sh installs it): skipped\n");
    return;
  }
  out("The graph is read by the import's parser and served by the agent's radar server; Chromium loads /radar. First "
      "render: from navigation start to the first complete drawing (model received, laid out, drawn), as the page "
      "measures it. Frame: the canvas time of one redraw while panning (software rendering, no GPU).\n\n"
      "| workloads | edges | drawn nodes | model received | first render | frame avg | frame p95 | all islands opened | frame, all open |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  (void)measure(o, 0);  // a first browser start is slower (caches, fonts): keep it out of the baseline
  std::vector<std::size_t> sizes = o.smoke ? std::vector<std::size_t>{0, 50} : std::vector<std::size_t>{0, 500, 5000};
  for (auto n : sizes) {
    const auto f = measure(o, n);
    auto ms = [](double v) { return v < 0 ? std::string("–") : fmt::format("{:.1f} ms", v); };
    out(fmt::format("| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |\n", n, n == 0 ? " (baseline)" : "", n * 4, f.drawn,
                    ms(f.first_model_ms), ms(f.first_render_ms), ms(f.pan_avg), ms(f.pan_p95),
                    f.expand_ms < 0 ? "–" : fmt::format("{} nodes in {:.0f} ms", f.drawn_all, f.expand_ms),
                    ms(f.pan_all_avg)));
  }
}

}  // namespace topowall::bench
