// Not part of the report (docs/BENCHMARKS.md section 1 quotes it): what each part of topowall's table costs
// (`--hold parts`), and what the ruleset alternatives we measured would save (`--hold alternatives`).
// Interleaved rounds of 2 s against conntrack only; per variant, the median over the rounds of its rate
// against the round's (b), so a machine that drifts between rounds moves every variant alike.
#include <fmt/format.h>

#include <net/if.h>

#include <functional>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "nft/writer.hpp"
#include "topowall/topology/ruleset.hpp"

namespace topowall::bench {

using namespace topowall::testing;

namespace {

constexpr int kRounds = 12;

struct Variant {
  std::string name;
  std::function<bool()> load;
};

// The writer's table, then `edit` (nft commands) on top of it.
std::function<bool()> written(const topology::RulesetModel& m, std::string edit = "") {
  return [&m, edit = std::move(edit)] {
    nft::NftWriter w;  // a fresh writer: the last one's table is gone
    checked(w.open(), "open the nftables socket");
    checked(w.apply(m), "apply");
    return edit.empty() || nft_file(edit);
  };
}

// The check's IPv4 rules alone, in check4 and allowed4, and prerouting sending IPv4 there: what a
// per-family check saves (nft keeps the `meta nfproto` dependency of every `ip` match it lists).
std::string split_by_family(const topology::RulesetModel& m) {
  std::string o = "add chain inet twb_tw check4\nadd chain inet twb_tw allowed4\n", line, chain;
  std::istringstream in(topology::render_nft(m));
  while (std::getline(in, line)) {
    if (line.rfind("\tchain ", 0) == 0) chain = line.substr(7, line.find(' ', 7) - 7);
    if ((chain != "check" && chain != "allowed") || line.rfind("\t\t", 0) != 0) continue;
    if (line.find("ipv6") != std::string::npos || line.find("ip6") != std::string::npos) continue;
    auto r = line.substr(2);
    if (auto k = r.find("meta nfproto ipv4 "); k != std::string::npos) r.erase(k, 18);
    if (auto k = r.find("goto allowed"); k != std::string::npos) r.replace(k, 12, "goto allowed4");
    o += "add rule inet twb_tw " + chain + "4 " + r + "\n";
  }
  return o + "flush chain inet twb_tw prerouting\nadd rule inet twb_tw prerouting ct state established,related accept\n"
             "add rule inet twb_tw prerouting meta nfproto ipv4 jump check4\nadd rule inet twb_tw prerouting jump check\n";
}

// The inet guard as a regular chain jumped to from prerouting (one hook less per packet). Measured only:
// prerouting runs after conntrack, so a spoofed packet would update a neighbour's connection (a forged RST)
// before the guard dropped it. The guard stays a hook before conntrack (priority -300).
std::string guard_as_jump() {
  return "flush chain inet twb_tw guard\ndelete chain inet twb_tw guard\nadd chain inet twb_tw guardj\n"
         "add rule inet twb_tw guardj iif . ip saddr @gsrc4 return\nadd rule inet twb_tw guardj drop\n"
         "insert rule inet twb_tw prerouting meta iifkind \"veth\" jump guardj\n";
}

// `text` with a size on every set and map: the kernel then picks its fixed-size hash (no resizable
// rhashtable), at the price of a hard cap on elements.
std::string sized(const std::string& text) {
  std::string o, line;
  bool pending = false;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    if (line.rfind("\tset ", 0) == 0 || line.rfind("\tmap ", 0) == 0) pending = true;
    o += line + "\n";
    if (pending && line.rfind("\t\ttype ", 0) == 0) {
      o += "\t\tsize 262144\n";
      pending = false;
    }
  }
  return o;
}

// The bridge guard replaced by a netdev ingress chain on each lab port, its own address a constant compare
// (no set lookup): what a per-port guard would save. Measured only (IPv4 and ARP, no alerts). "" when a
// port's name cannot be found.
std::string guard_per_port(const Lab& lab) {
  std::string o = "delete table bridge twb_tw\ntable netdev twb_tw {\n";
  for (const char* host : {"a", "b"}) {
    char name[IF_NAMESIZE] = {};
    if (!if_indextoname(lab.port(host), name)) return "";
    o += fmt::format("\tchain port_{0} {{\n\t\ttype filter hook ingress device \"{1}\" priority -300; policy accept;\n"
                     "\t\tip saddr {2} accept\n\t\tarp saddr ip {2} accept\n\t\tdrop\n\t}}\n",
                     host, name, lab.ip(host));
  }
  return o + "}\n";
}

std::function<bool()> text(std::string t) {
  return [t = std::move(t)] { return nft_file(t); };
}

void run(Lab& lab, const std::vector<Variant>& variants) {
  Server server(lab.ns_path("b"), 8080);
  std::vector<std::vector<double>> rates(variants.size());
  for (int round = 0; round < kRounds; ++round)
    for (std::size_t i = 0; i < variants.size(); ++i) {
      if (!variants[i].load()) out("WARNING: " + variants[i].name + " did not load\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      rates[i].push_back(connect_parallel(lab.ns_path("a"), lab.ip("b"), 8080, 2, 2).rate());
      drop_tables(i == 0 ? "twb_ct" : "twb_tw");
      (void)nft_file("add table netdev twb_tw\ndelete table netdev twb_tw\n");  // add: idempotent, so the delete never fails
      std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    }
  out("| table | connections/s (median) | vs (b), median over rounds |\n| --- | ---: | ---: |\n");
  for (std::size_t i = 0; i < variants.size(); ++i) {
    std::vector<double> ratio;
    for (std::size_t r = 0; r < rates[i].size(); ++r) ratio.push_back(rates[i][r] / rates[0][r]);
    out(fmt::format("| {} | {:.0f} | {:.3f} |\n", variants[i].name, percentile(rates[i], 0.5), percentile(ratio, 0.5)));
  }
}

}  // namespace

void parts(Lab& lab, const std::string& which) {
  for (const char* t : {"twb_ct", "twb_naive", "twb_tw"}) drop_tables(t);
  const auto big = synthetic("twb_tw", 10000, 100000, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"));
  const auto small = synthetic("twb_tw", 100, 100, lab.ip("a"), lab.ip("b"), 8080, lab.port("a"), lab.port("b"));
  std::vector<Variant> v{{"(b) conntrack only", text(kCtTable)}, {"topowall's table (100k edges)", written(big)}};
  if (which == "parts") {
    const std::string no_inet_guard = "flush chain inet twb_tw guard\ndelete chain inet twb_tw guard\n";
    v.push_back({"without the bridge guard", written(big, "delete table bridge twb_tw\n")});
    v.push_back({"without the inet guard", written(big, no_inet_guard)});
    v.push_back({"without both guards", written(big, "delete table bridge twb_tw\n" + no_inet_guard)});
    v.push_back({"without the check (the lab's client accepted before it)",
                 written(big, "insert rule inet twb_tw prerouting ip saddr " + lab.ip("a") + " accept\n")});
  } else {
    v.push_back({"the check split by family", written(big, split_by_family(big))});
    v.push_back({"the inet guard as a jump from prerouting", written(big, guard_as_jump())});
    // An empty edit would load the plain table under this row's name: left out, and said.
    if (const auto per_port = guard_per_port(lab); !per_port.empty())
      v.push_back({"the bridge guard as a netdev chain per port", written(big, per_port)});
    else
      out("WARNING: the lab's port names are unknown: the netdev guard row is left out\n");
    v.push_back({"the same table by `nft -f`", text(topology::render_nft(big))});
    v.push_back({"... with sized sets", text(sized(topology::render_nft(big)))});
    v.push_back({"100 edges, 100 endpoints by `nft -f`", text(topology::render_nft(small))});
    v.push_back({"... with sized sets", text(sized(topology::render_nft(small)))});
  }
  run(lab, v);
}

}  // namespace topowall::bench
