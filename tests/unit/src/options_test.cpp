// topowalld's flags to Options: the defaults, every check, a few good combinations, and the flag
// names the README documents.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "app/options.hpp"

using namespace topowall;

namespace {

// As main does it; CLI11's own errors (unknown flag, out of range) throw CLI::ParseError.
Result<app::Options> parse(const std::string& line) {
  CLI::App cli;
  app::Flags flags;
  app::add_flags(cli, flags);
  cli.parse(line, false);
  return app::to_options(flags);
}

// `line` is refused with a message that says `part`.
::testing::AssertionResult refused(const std::string& line, const std::string& part) {
  auto o = parse(line);
  if (o) return ::testing::AssertionFailure() << "'" << line << "' was accepted";
  if (o.error().message.find(part) == std::string::npos)
    return ::testing::AssertionFailure() << "'" << o.error().message << "' does not say '" << part << "'";
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(Options, Defaults) {
  auto o = parse("");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->state_dir, "/var/lib/topowall");
  EXPECT_EQ(o->agent.socket_path, "/run/topowall/topowall.sock");
  EXPECT_FALSE(o->agent.initial_mode);
  EXPECT_FALSE(o->agent.learn_for);
  EXPECT_EQ(o->agent.after_learn, Mode::monitor);
  EXPECT_EQ(o->agent.identity.labels, (std::vector<std::string>{"app", "app.kubernetes.io/name"}));
  EXPECT_TRUE(o->agent.external.empty());
  EXPECT_EQ(o->agent.ruleset, topology::RulesetConfig{});
  EXPECT_EQ(o->agent.new_workload_learn_for, std::chrono::seconds(0));
  EXPECT_EQ(o->agent.auto_promote_after, std::chrono::seconds(0));
  EXPECT_EQ(o->agent.pending_limits.per_source, topology::PendingLimits{}.per_source);
  EXPECT_EQ(o->agent.pending_limits.total, topology::PendingLimits{}.total);
  EXPECT_EQ(o->agent.alert_rate.per_second, topology::Rate{}.per_second);
  EXPECT_EQ(o->agent.alert_rate.burst, topology::Rate{}.burst);
  EXPECT_FALSE(o->agent.set_bridge_netfilter);
  EXPECT_TRUE(o->runtime_socket.empty());
  EXPECT_TRUE(o->discover_netns);  // no runtime API: named namespaces are the workloads
  EXPECT_EQ(o->netns.dir, "/run/netns");
  EXPECT_EQ(o->log_level, "info");
  EXPECT_EQ(o->alert_sinks, std::vector<std::string>{"log"});
  EXPECT_TRUE(o->metrics_listen.empty());
  EXPECT_TRUE(o->cluster_etcd.empty());
  EXPECT_FALSE(o->uninstall);
}

TEST(Options, LearningWindowAndModes) {
  auto o = parse("--mode enforce --learn-for 2h --after-learn enforce --new-workload-learn-for 1h --auto-promote-after 2d");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->agent.initial_mode, Mode::enforce);
  EXPECT_EQ(o->agent.learn_for, std::chrono::hours(2));
  EXPECT_EQ(o->agent.after_learn, Mode::enforce);
  EXPECT_EQ(o->agent.new_workload_learn_for, std::chrono::hours(1));
  EXPECT_EQ(o->agent.auto_promote_after, std::chrono::hours(48));
}

TEST(Options, NetworksPortsAndRuleset) {
  auto o = parse(
      "--external-network corp=10.0.0.0/8 --external-network lab=fd00::/8 --failsafe udp/53 --failsafe tcp/2222 "
      "--mark-mask 0xff00 --table tw --nflog-group 7 --priority -90 --no-anti-spoofing --set-bridge-netfilter "
      "--identity-labels team,,app");
  ASSERT_TRUE(o) << o.error().message;
  ASSERT_EQ(o->agent.external.size(), 2u);
  EXPECT_EQ(o->agent.external[0].name, "corp");
  EXPECT_EQ(o->agent.external[0].cidr.prefix, 8);
  EXPECT_EQ(o->agent.external[1].name, "lab");
  const auto& rs = o->agent.ruleset;
  EXPECT_EQ(rs.failsafe, (std::set<topology::PortKey>{{17, 53}, {6, 2222}}));  // the default tcp/22 replaced
  EXPECT_EQ(rs.mark_mask, 0xff00u);
  EXPECT_EQ(rs.table, "tw");
  EXPECT_EQ(rs.nflog_group, 7);
  EXPECT_EQ(rs.priority, -90);
  EXPECT_FALSE(rs.guard);
  EXPECT_TRUE(o->agent.set_bridge_netfilter);
  EXPECT_EQ(o->agent.identity.labels, (std::vector<std::string>{"team", "app"}));
}

TEST(Options, NamespaceDiscoveryFollowsTheRuntimeSocket) {
  auto runtime = parse("--runtime-socket /run/podman/podman.sock");
  ASSERT_TRUE(runtime);
  EXPECT_EQ(runtime->runtime_socket, "/run/podman/podman.sock");
  EXPECT_FALSE(runtime->discover_netns);
  auto both = parse("--runtime-socket /run/podman/podman.sock --discover-netns --netns-prefix tw- --netns-dir /x");
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->discover_netns);
  EXPECT_EQ(both->netns.name_prefix, "tw-");
  EXPECT_EQ(both->netns.dir, "/x");
  auto none = parse("--no-discover-netns --discover-netns");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->discover_netns);
}

TEST(Options, TheCriSocketIsARuntimeAndExcludesTheDockerApi) {
  auto cri = parse("--cri-socket /run/containerd/containerd.sock");
  ASSERT_TRUE(cri);
  EXPECT_EQ(cri->cri_socket, "/run/containerd/containerd.sock");
  EXPECT_TRUE(cri->runtime_socket.empty());
  // containerd mounts pods' namespaces in /run/netns: they are pods, not named-namespace workloads.
  EXPECT_FALSE(cri->discover_netns);
  auto both = parse("--cri-socket /run/crio/crio.sock --runtime-socket /run/podman/podman.sock");
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("choose one"), std::string::npos) << both.error().message;
}

TEST(Options, TheRuntimeTimeoutIsEachClientsDefaultUnlessGiven) {
  auto dflt = parse("--runtime-socket /run/podman/podman.sock");
  ASSERT_TRUE(dflt);
  EXPECT_EQ(dflt->runtime_timeout.count(), 0) << "0: Docker API 10 s, CRI 5 s";
  auto given = parse("--runtime-socket /run/podman/podman.sock --runtime-timeout 2s");
  ASSERT_TRUE(given) << given.error().message;
  EXPECT_EQ(given->runtime_timeout, std::chrono::seconds(2));
  EXPECT_TRUE(refused("--runtime-timeout 0", "--runtime-timeout 0: a request with no time to answer always fails"));
  EXPECT_TRUE(refused("--runtime-timeout slow", "--runtime-timeout 'slow' is not a duration"));
  EXPECT_TRUE(refused("--runtime-timeout 1h", "--runtime-timeout '1h' is over 10m"));
}

TEST(Options, ClusterMetricsSinksAndUninstall) {
  auto o = parse(
      "--cluster-etcd https://10.0.0.5:2379 --node-name n1 --cluster-ca ca.pem --cluster-cert c.pem --cluster-key k.pem "
      "--metrics-listen 127.0.0.1:9617 --alert-sink syslog --alert-sink jsonl:/tmp/a.jsonl --uninstall");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->cluster_etcd, "https://10.0.0.5:2379");
  EXPECT_EQ(o->node_name, "n1");
  EXPECT_EQ(o->cluster_tls.ca, "ca.pem");
  EXPECT_EQ(o->cluster_tls.cert, "c.pem");
  EXPECT_EQ(o->cluster_tls.key, "k.pem");
  EXPECT_EQ(o->metrics_listen, "127.0.0.1:9617");
  EXPECT_EQ(o->alert_sinks, (std::vector<std::string>{"syslog", "jsonl:/tmp/a.jsonl"}));
  EXPECT_TRUE(o->uninstall);
}

TEST(Options, BadDurationsNameTheirFlag) {
  EXPECT_TRUE(refused("--learn-for soon", "--learn-for 'soon' is not a duration like 30m, 2h or 7d"));
  EXPECT_TRUE(refused("--new-workload-learn-for forever", "--new-workload-learn-for 'forever'"));
  EXPECT_TRUE(refused("--auto-promote-after later", "--auto-promote-after 'later'"));
}

TEST(Options, BadExternalNetworks) {
  for (const auto* bad : {"corp", "corp=", "corp=10.0.0.0/33", "=10.0.0.0/8", "host=10.0.0.0/8", "world=10.0.0.0/8",
                          "-corp=10.0.0.0/8"})
    EXPECT_TRUE(refused(std::string("--external-network ") + bad, "must be NAME=CIDR, e.g. corp=10.0.0.0/8"))
        << bad;
}

TEST(Options, BadMarkMasks) {
  for (const auto* bad : {"banana", "0", "0x3f", "0x0fc00000" /* 63 ids */, "0x0f0f0000" /* a gap */})
    EXPECT_TRUE(refused(std::string("--mark-mask ") + bad, "room for at least 64 ids, e.g. 0x0fff0000"))
        << bad;
  EXPECT_TRUE(parse("--mark-mask 0x7f000000"));  // 127 ids
}

TEST(Options, BadFailsafePorts) {
  for (const auto* bad : {"tcp", "22", "tcp/0", "tcp/65536", "icmp/8", "gre/1", "tcp/"})
    EXPECT_TRUE(refused(std::string("--failsafe ") + bad, "must be tcp|udp|sctp/PORT")) << bad;
}

TEST(Options, BadMetricsAddress) {
  EXPECT_TRUE(refused("--metrics-listen nope", "--metrics-listen 'nope'"));
  EXPECT_TRUE(refused("--metrics-listen 127.0.0.1:99999", "port must be a number"));
}

TEST(Options, CliRefusesOutOfRangeAndUnknownValues) {
  for (const auto* bad : {"--mode bogus", "--after-learn never", "--nflog-group 0", "--nflog-group 65536",
                          "--max-pending 0", "--max-pending-per-source 0", "--workload-alert-rate 0",
                          "--workload-alert-burst 0.5", "--no-such-flag"})
    EXPECT_THROW(parse(bad), CLI::ParseError) << bad;
}

// The README's table of options lists flags by name: each must exist.
TEST(Options, EveryFlagTheReadmeListsExists) {
  std::ifstream in(std::string(TOPOWALL_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in);
  CLI::App cli;
  app::Flags flags;
  app::add_flags(cli, flags);
  std::regex flag("`(--[a-z][a-z-]+)");
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `--", 0) != 0) continue;
    for (std::sregex_iterator it(line.begin(), line.end(), flag), end; it != end; ++it, ++checked)
      EXPECT_NO_THROW(cli.get_option((*it)[1].str())) << (*it)[1].str();
  }
  EXPECT_GE(checked, 20);
}

TEST(Options, ClusterTrust) {
  auto o = parse("--cluster-etcd https://10.0.0.5:2379 --cluster-password-file /etc/topowall/n1.pw --cluster-range 10.42.1.0/24 "
                 "--cluster-range fd00:42:1::/64 --cluster-decisions-user ops --cluster-decisions-password-file /etc/ops.pw");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->cluster_auth.password_file, "/etc/topowall/n1.pw");
  EXPECT_EQ(o->cluster_auth.user, "") << "the node name, decided at wiring";
  ASSERT_EQ(o->cluster_ranges.size(), 2u);
  EXPECT_EQ(o->cluster_ranges[1].to_string(), "fd00:42:1::/64");
  EXPECT_EQ(o->cluster_decisions.user, "ops");
  EXPECT_TRUE(refused("--cluster-range 10.42.1.0/33", "--cluster-range '10.42.1.0/33'"));
  EXPECT_TRUE(refused("--cluster-user n1", "--cluster-password-file"));
  EXPECT_TRUE(refused("--cluster-decisions-user ops", "go together"));
}
