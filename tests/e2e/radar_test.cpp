// The radar in real headless Chromium against the agent learning a podman lab of eight workloads in
// two namespaces: every workload and edge is drawn, changes arrive without a reload (a blocked flow as
// pending, its approval, a mode change, a new replica), and the exported file shows the same graph offline.
#include <sstream>

#include "chromium.hpp"
#include "podman_lab.hpp"

using namespace topowall::testing;
using namespace topowall::testing::e2e;

namespace {

// Lines of the page's own dump (#dump in the address) that start with `kind`.
std::set<std::string> lines_of(const std::string& dump, const std::string& kind) {
  std::set<std::string> out;
  std::istringstream in(dump);
  for (std::string l; std::getline(in, l);)
    if (l.rfind(kind + " ", 0) == 0) out.insert(l);
  return out;
}

std::string dump_of(Chromium& b) {
  auto d = b.eval("document.getElementById('radar-dump').textContent");
  return d && d->is_string() ? d->get<std::string>() : "";
}

bool has(const std::string& dump, const std::string& needle) { return dump.find(needle) != std::string::npos; }

}  // namespace

TEST_F(PodmanLab, RadarDrawsTheLabLiveAndItsExportOffline) {
  if (Chromium::binary().empty()) GTEST_SKIP() << "chromium is not installed (tools/install-deps.sh installs it)";
  const std::string httpd = "httpd -f -p 8080 -h /www";
  // name, app, namespace
  const std::vector<std::array<std::string, 3>> lab{
      {"web-1", "web", "shop"},  {"web-2", "web", "shop"},     {"api", "api", "shop"},    {"auth", "auth", "shop"},
      {"db", "db", "data"},      {"cache", "cache", "data"},  {"queue", "queue", "data"}, {"worker", "worker", "data"},
      {"report", "report", "data"}};
  for (const auto& [name, app, ns] : lab) run("topowall-e2e-" + name, app, httpd, "", "--label namespace=" + ns);
  start_agent();
  wait_endpoints(static_cast<int>(lab.size()));
  const std::vector<std::pair<std::string, std::string>> flows{{"web-1", "api"}, {"web-2", "auth"}, {"api", "db"},
                                                               {"api", "cache"}, {"worker", "queue"}, {"report", "db"},
                                                               {"auth", "db"}};
  std::set<std::string> want_edges;
  for (const auto& [from, to] : flows) {
    ASSERT_TRUE(tcp("topowall-e2e-" + from, ip_of("topowall-e2e-" + to), 8080)) << from << " -> " << to;
    want_edges.insert("edge " + from.substr(0, from.find('-')) + " " + to + " tcp/8080 learned");
  }
  ASSERT_TRUE(eventually([&] { return edges().size() == want_edges.size(); })) << "learned: " << edges().size();

  Chromium b;
  ASSERT_TRUE(b.start());
  const std::string url = "http://127.0.0.1:" + std::to_string(metrics_port()) + "/radar#dump";
  ASSERT_TRUE(b.navigate(url));
  ASSERT_TRUE(b.wait_for("document.getElementById('radar-dump').textContent.includes('edge')", 15000))
      << b.js("document.body.innerText");
  auto dump = dump_of(b);
  for (const char* w : {"web", "api", "auth", "db", "cache", "queue", "worker", "report"})
    EXPECT_TRUE(has(dump, std::string("node ") + w + " workload ")) << w << "\n" << dump;
  EXPECT_TRUE(has(dump, "node web workload shop 2 learn")) << "two replicas, in its namespace's island\n" << dump;
  EXPECT_TRUE(has(dump, "node db workload data 1 learn")) << dump;
  EXPECT_EQ(lines_of(dump, "edge"), want_edges) << dump;
  ASSERT_TRUE(b.eval("window.radarLoadedOnce = true"));

  // A mode change, then a flow outside the graph: blocked, pending, on the page without a reload.
  ASSERT_EQ(cli("mode enforce")["mode"], "enforce");
  EXPECT_TRUE(b.wait_for("document.getElementById('radar-dump').textContent.includes('node web workload shop 2 enforce')",
                         2000)) << "the mode change did not reach the page in 2 s\n" << dump_of(b);
  EXPECT_FALSE(tcp("topowall-e2e-db", ip_of("topowall-e2e-web-1"), 8080)) << "unknown flow must be blocked";
  ASSERT_TRUE(eventually([&] { return pending_pairs().count("db>web") > 0; })) << "the agent saw no pending flow";
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(b.wait_for("/edge db web tcp\\/8080 (pending|blocked) \\d+/.test(document.getElementById('radar-dump').textContent)",
                         2000)) << dump_of(b);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2100));
  EXPECT_EQ(b.js("window.radarLoadedOnce === true"), true) << "the page was reloaded";
  ASSERT_EQ(b.js("window.radar.select('web')"), true);
  auto details = b.eval("document.getElementById('details').textContent");
  ASSERT_TRUE(details);
  EXPECT_TRUE(has(details->get<std::string>(), "topowall flows approve ")) << details->dump();

  // Approving it from the CLI turns the same edge approved on the page.
  std::string id;
  for (const auto& p : cli("flows pending"))
    if (p["src"] == "db" && p["dst"] == "web") id = std::to_string(p["id"].get<std::uint64_t>());
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(sh(std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock flows approve " + id), 0);
  EXPECT_TRUE(b.wait_for("document.getElementById('radar-dump').textContent.includes('edge db web tcp/8080 approved')",
                         2000)) << "the approval did not reach the page in 2 s\n" << dump_of(b);

  // A new replica appears too.
  run("topowall-e2e-web-3", "web", httpd, "", "--label namespace=shop");
  ASSERT_TRUE(eventually([&] { return cli("status").value("endpoints", 0) == static_cast<int>(lab.size()) + 1; }));
  EXPECT_TRUE(b.wait_for("document.getElementById('radar-dump').textContent.includes('node web workload shop 3 enforce')",
                         2000)) << dump_of(b);
  const auto live = dump_of(b);

  // The exported file: the same graph, with the network cut off.
  const std::string file = dir + "/radar.html";
  // In a subshell: sh() sends the command's own output to /dev/null.
  ASSERT_EQ(sh("(" + std::string(TOPOWALL_CLI) + " --socket " + dir + "/sock topology export --format html > " + file + ")"), 0);
  Chromium off;
  ASSERT_TRUE(off.start());
  ASSERT_TRUE(off.offline());
  ASSERT_TRUE(off.navigate("file://" + file + "#dump"));
  ASSERT_TRUE(off.wait_for("document.getElementById('radar-dump').textContent.includes('edge')", 15000))
      << off.js("document.body.innerText") << "\nthe file starts: " << sh_out("head -c 400 " + file);
  const auto exported = dump_of(off);
  EXPECT_EQ(lines_of(exported, "node"), lines_of(live, "node")) << exported;
  EXPECT_EQ(lines_of(exported, "edge"), lines_of(live, "edge")) << exported;
  EXPECT_TRUE(off.requests().empty()) << "the exported file reached for " << off.requests().front();
}
