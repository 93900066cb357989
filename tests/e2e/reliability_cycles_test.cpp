// Reliability matrix, item 3 (docs/RELIABILITY.md): container start/stop cycles on one reused address,
// each cycle a different identity, with the real topowalld enforcing on real podman containers. No flow
// is ever allowed by a previous owner of the address (in either direction, from the container's first
// packet on), and nothing leaks: set elements and chains of our tables, workload ids, namespaces, the
// agent's file descriptors; its memory stays flat. Root only. 15 cycles; TOPOWALL_RELIABILITY_LONG=1
// (tools/reliability.sh): 500.
#include <fstream>

#include "podman_lab.hpp"

using namespace topowall::testing;
using namespace topowall::testing::e2e;
using nlohmann::json;

namespace {

bool reliability_long_run() { return std::getenv("TOPOWALL_RELIABILITY_LONG") != nullptr; }

const std::string kSrvIp = kSubnet + ".2", kReused = kSubnet + ".50";
constexpr int kReuseAfterSeconds = 2;
// VmRSS may grow this much from the baseline (after the warm-up cycles) to the end, whatever the cycles.
constexpr long kRssBoundKiB = 4096;

// A server that answers every connection with its name, and a loop that connects to `peer` every
// 0.2 s and prints what answered: its log lists every connection that passed.
std::string serve_and_probe(const std::string& name, const std::string& peer) {
  return "nc -ll -p 8080 -e echo " + name + " & while true; do nc -w 1 " + peer + " 8080 </dev/null; sleep 0.2; done";
}

// What must come back to its baseline once the cycles are over.
struct Footprint {
  std::map<std::string, std::size_t> elements;  // per set or map of our inet and bridge tables
  std::size_t chains = 0, netns = 0, fds = 0;
  int workloads = 0, endpoints = 0;
  long rss_kib = 0;
  bool operator==(const Footprint& o) const {  // memory apart: bounded, not equal
    return elements == o.elements && chains == o.chains && netns == o.netns && fds <= o.fds &&
           workloads == o.workloads && endpoints == o.endpoints;
  }
};

std::ostream& operator<<(std::ostream& os, const Footprint& f) {
  os << "chains " << f.chains << ", namespaces " << f.netns << ", agent fds " << f.fds << ", workloads " << f.workloads
     << ", endpoints " << f.endpoints << ", VmRSS " << f.rss_kib << " KiB, elements:";
  for (const auto& [set, n] : f.elements) os << " " << set << "=" << n;
  return os;
}

struct CyclesLab : PodmanLab {
  Footprint footprint() {
    Footprint f;
    for (const char* family : {"inet", "bridge"}) {
      const json t = json::parse(sh_out(std::string("nft -j list table ") + family + " topowall_e2e"), nullptr, false);
      if (t.is_discarded()) continue;
      for (const auto& o : t["nftables"]) {
        if (o.contains("chain")) ++f.chains;
        for (const char* kind : {"set", "map"})
          if (o.contains(kind))
            f.elements[std::string(family) + "/" + o[kind]["name"].get<std::string>()] = o[kind].value("elem", json::array()).size();
      }
    }
    f.netns = std::stoul(sh_out("ls /run/netns | wc -l"));
    f.fds = std::stoul(sh_out("ls /proc/" + std::to_string(agent) + "/fd | wc -l"));
    const json s = cli("status");
    f.workloads = s.value("workloads", -1);
    f.endpoints = s.value("endpoints", -1);
    std::ifstream st("/proc/" + std::to_string(agent) + "/status");
    for (std::string line; std::getline(st, line);)
      if (line.rfind("VmRSS:", 0) == 0) f.rss_kib = std::stol(line.substr(6));
    return f;
  }
  // The workload the agent holds at the reused address ("" when none).
  std::string owner_of_reused() {
    const json w = cli("workloads");
    for (const auto& wl : w)
      for (const auto& a : wl["addresses"])
        if (a == kReused) return wl["name"];
    return "";
  }
  std::string logs(const std::string& container) { return sh_out("podman logs " + container + " 2>/dev/null"); }
  // One cycle: `owner` starts on the reused address (the previous owner's container was removed just
  // before, without waiting for the agent), is checked, and is removed. Good may reach srv both ways
  // once the agent knows it; any other owner never reaches srv (its log) nor is reached (srv's log).
  void cycle(int i, const std::string& owner) {
    const std::string c = "topowall-e2e-rel-" + std::to_string(i);
    ASSERT_NO_FATAL_FAILURE(run(c, owner, serve_and_probe(owner, kSrvIp), kReused));
    ASSERT_TRUE(eventually([&] { return owner_of_reused() == owner; })) << "cycle " << i << ": the agent never saw " << owner;
    if (owner == "good") {
      EXPECT_TRUE(eventually([&] { return logs(c).find("srv") != std::string::npos; }))
          << "cycle " << i << ": good never reached srv";
      EXPECT_TRUE(tcp("topowall-e2e-srv", kReused, 8080)) << "cycle " << i << ": srv never reached good";
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));  // four more tries of its probe, enforced
      EXPECT_EQ(logs(c).find("srv"), std::string::npos) << "cycle " << i << ": " << owner << " reached srv: " << logs(c);
    }
    ASSERT_EQ(sh("podman rm -f -t 0 " + c), 0);
  }
};

}  // namespace

TEST_F(CyclesLab, ReliabilityContainerCyclesOnAReusedAddressInheritNothingAndLeakNothing) {
  const int cycles = reliability_long_run() ? 500 : 10;
  // Learn good <-> srv (both ways, tcp/8080), then enforce.
  run("topowall-e2e-srv", "srv", serve_and_probe("srv", kReused), kSrvIp);
  ASSERT_NO_FATAL_FAILURE(start_agent("learn", {"--id-reuse-after", std::to_string(kReuseAfterSeconds) + "s"}));
  run("topowall-e2e-rel-0", "good", serve_and_probe("good", kSrvIp), kReused);
  const std::set<std::string> learned{"good>srv:tcp/8080", "srv>good:tcp/8080"};
  ASSERT_TRUE(eventually([&] { return edges() == learned; })) << cli("topology export --format json").dump();
  ASSERT_EQ(cli("mode enforce")["mode"], "enforce");
  ASSERT_EQ(sh("podman rm -f -t 0 topowall-e2e-rel-0"), 0);
  const auto srv_log_learned = logs("topowall-e2e-srv").size();

  // Warm-up: each kind of owner once, then the baseline once the agent has let go of them.
  ASSERT_NO_FATAL_FAILURE(cycle(1, "bad-1"));
  ASSERT_NO_FATAL_FAILURE(cycle(2, "good"));
  auto settled = [&] { return owner_of_reused().empty(); };
  ASSERT_TRUE(eventually(settled));
  std::this_thread::sleep_for(std::chrono::seconds(kReuseAfterSeconds + 2));  // ids unused this long are released
  const Footprint before = footprint();
  for (int i = 3; i < cycles + 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(cycle(i, i % 2 ? "bad-" + std::to_string(i) : "good"));
    if (i % 50 == 0) std::cout << "cycle " << i << ": VmRSS " << footprint().rss_kib << " KiB\n";
  }
  ASSERT_TRUE(eventually(settled));
  Footprint after;
  const bool back = eventually([&] { return (after = footprint()) == before; }, std::chrono::seconds(kReuseAfterSeconds + 8));
  std::cout << cycles << " cycles\nbaseline: " << before << "\nafter:    " << after << "\n";
  EXPECT_TRUE(back) << "something leaked:\nbaseline: " << before << "\nafter:    " << after;
  EXPECT_LE(after.rss_kib - before.rss_kib, kRssBoundKiB) << "agent memory grew";
  const auto srv_log = logs("topowall-e2e-srv");
  EXPECT_EQ(srv_log.find("bad"), std::string::npos) << "srv reached a later owner of " << kReused << ":\n" << srv_log;
  EXPECT_NE(srv_log.find("good", srv_log_learned), std::string::npos) << "srv never reached good while enforcing";
  const json st = cli("status");
  std::cout << "pending flows " << st.value("pending", -1) << ", ids released " << st["counters"].value("ids_released", -1)
            << "\n";
  RecordProperty("cycles", cycles);
}
