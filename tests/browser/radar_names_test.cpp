// The radar in real headless Chromium, on an imported synthetic graph (no containers, no root): names
// that hold markup, quotes and unicode are shown as text and never run, on the served page and in the
// exported file, which opens with the network cut off.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>
#include <thread>

#include "chromium.hpp"
#include "metrics/http_server.hpp"
#include "metrics/radar_page.hpp"
#include "topowall/topology/radar.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;
using nlohmann::json;

namespace {

const std::string kEvil = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";
const std::string kQuotes = "\"double\" 'single' `back` & &amp;";
const std::string kUnicode = "日本語 ☃ émoji 🚀 \u202Eright-to-left";

// The graph as `topology import` takes it: every label a hostile or unusual string.
topology::Graph hostile_graph() {
  json g{{"version", 1},
         {"workloads", json::array({{{"name", "web"}, {"labels", {{"app", kEvil}, {"namespace", kEvil}}}},
                                    {{"name", "api"}, {"labels", {{"note", kQuotes}, {"namespace", kUnicode}}}},
                                    {{"name", "db"}, {"labels", {{"owner", kUnicode}}}}})},
         {"edges", json::array({{{"src", "web"}, {"dst", "api"}, {"proto", "tcp"}, {"port", 8080}, {"state", "learned"},
                                 {"count", 3}, {"first_seen", "2026-01-01T00:00:00Z"}, {"last_seen", "2026-01-01T00:01:00Z"},
                                 {"comment", kEvil}},
                                {{"src", "api"}, {"dst", "db"}, {"proto", "tcp"}, {"port", 5432}, {"state", "approved"},
                                 {"count", 1}, {"first_seen", "2026-01-01T00:00:00Z"}, {"last_seen", "2026-01-01T00:01:00Z"}}})}};
  auto parsed = topology::graph_from_json(g);
  if (!parsed) throw std::runtime_error(parsed.error().message);
  return *parsed;
}

struct RadarNames : ::testing::Test {
  void SetUp() override {
    if (topowall::testing::Chromium::binary().empty()) GTEST_SKIP() << "chromium is not installed (tools/install-deps.sh)";
    graph = hostile_graph();
    model = topology::radar_model({graph, nullptr, nullptr, json::array(), Clock::now()});
  }
  // The checks shared by the served page and the exported file.
  void expect_text_only(topowall::testing::Chromium& b) {
    ASSERT_TRUE(b.wait_for("document.body.dataset.radarNodes === '3'", 15000))
        << "the page did not draw the graph: " << b.js("document.body.innerText").dump();
    EXPECT_EQ(b.js("typeof window.pwned"), "undefined") << "a label ran as code";
    EXPECT_EQ(b.js("document.querySelectorAll('img').length"), 0) << "a label became an element";
    EXPECT_EQ(b.js("document.querySelectorAll('script:not([type])').length"), 1) << "only the radar's script";
    // The islands are named by the namespace labels: options that hold the raw text.
    auto islands = b.eval("[...document.querySelectorAll('#island option')].map(o => o.value)");
    ASSERT_TRUE(islands);
    EXPECT_NE(std::find(islands->begin(), islands->end(), kEvil), islands->end()) << islands->dump();
    EXPECT_NE(std::find(islands->begin(), islands->end(), kUnicode), islands->end()) << islands->dump();
    ASSERT_EQ(b.js("window.radar.select('web')"), true);
    auto details = b.eval("document.getElementById('details').textContent");
    ASSERT_TRUE(details);
    EXPECT_NE(details->get<std::string>().find("app=" + kEvil), std::string::npos) << details->dump();
    // Each edge says when it was last used (months before the model was generated).
    EXPECT_NE(details->get<std::string>().find(" used "), std::string::npos) << details->dump();
    EXPECT_NE(details->get<std::string>().find(" d ago"), std::string::npos) << details->dump();
    ASSERT_EQ(b.js("window.radar.select('api')"), true);
    details = b.eval("document.getElementById('details').textContent");
    EXPECT_NE(details->get<std::string>().find("note=" + kQuotes), std::string::npos) << details->dump();
    EXPECT_NE(details->get<std::string>().find(kUnicode), std::string::npos) << details->dump();
    // Checked again once the panels are filled: an onerror handler would run a moment after its element.
    EXPECT_EQ(b.js("document.querySelectorAll('img').length"), 0) << "a label became an element";
    EXPECT_FALSE(b.wait_for("typeof window.pwned !== 'undefined'", 1000)) << "a label ran as code";
  }
  topology::Graph graph;
  json model;
};

}  // namespace

TEST_F(RadarNames, ServedPageShowsHostileLabelsAsText) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  metrics::MetricsServer server(io, [] { return json::object(); });
  server.set_radar([this] { return model; });
  ASSERT_TRUE(server.start("127.0.0.1:0"));
  std::thread t([&] { io.run(); });
  topowall::testing::Chromium b;
  auto st = b.start();
  if (st) st = b.navigate("http://127.0.0.1:" + std::to_string(server.port()) + "/radar#dump");
  if (st) expect_text_only(b);
  else ADD_FAILURE() << st.error().message;
  b.stop();
  boost::asio::post(io, [&] { server.stop(); });
  work.reset();
  io.stop();
  t.join();
}

TEST_F(RadarNames, ExportedFileShowsTheSameGraphWithTheNetworkOff) {
  const std::string file = "/tmp/topowall-radar-names-" + std::to_string(getpid()) + ".html";
  std::ofstream(file) << metrics::radar_exported_page(model);
  topowall::testing::Chromium b;
  auto st = b.start();
  if (st) st = b.offline();
  if (st) st = b.navigate("file://" + file + "#dump");
  if (st) {
    expect_text_only(b);
    auto dump = b.eval("document.getElementById('radar-dump').textContent");
    ASSERT_TRUE(dump);
    for (const char* line : {"node web workload", "node api workload", "node db workload", "edge web api tcp/8080 learned",
                             "edge api db tcp/5432 approved"})
      EXPECT_NE(dump->get<std::string>().find(line), std::string::npos) << line << "\n" << dump->dump();
    EXPECT_TRUE(b.requests().empty()) << "the file reached for the network: " << b.requests().front();
    EXPECT_EQ(b.js("document.getElementById('live').textContent"), "snapshot");
  } else {
    ADD_FAILURE() << st.error().message;
  }
  b.stop();
  std::remove(file.c_str());
}
