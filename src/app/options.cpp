#include "app/options.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "metrics/http_server.hpp"
#include "topowall/topology/duration.hpp"
#include "topowall/topology/identity.hpp"

namespace topowall::app {

namespace {

// In the order `--help` has always listed them.
void add_general_flags(CLI::App& app, Flags& f) {
  app.add_option("--state-dir", f.state_dir, "where the graph and mode persist")->capture_default_str();
  app.add_option("--socket", f.socket, "control socket path")->capture_default_str();
  app.add_option("--runtime-socket", f.runtime_socket,
                 "Docker Engine API socket (dockerd, or `podman system service`)");
  app.add_option("--cri-socket", f.cri_socket,
                 "Kubernetes CRI socket: pods as workloads (/run/containerd/containerd.sock, /run/crio/crio.sock)");
  app.add_option("--runtime-timeout", f.runtime_timeout,
                 "how long one runtime API request (default 10s) or CRI call (default 5s) may take before it is retried");
  app.add_option("--mode", f.mode, "initial mode of a fresh state directory: learn|monitor|enforce")
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}));
  app.add_option("--learn-for", f.learn_for, "learning window, e.g. 30m, 2h, 7d; then --after-learn");
  app.add_option("--after-learn", f.after_learn, "mode when the learning window ends")
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}))
      ->capture_default_str();
  app.add_option("--identity-labels", f.identity_labels, "label keys naming a workload, first present wins")
      ->default_str("app,app.kubernetes.io/name");
  app.add_option("--external-network", f.external, "NAME=CIDR: name an outside network instead of `world`");
  app.add_flag("--discover-netns", f.discover_netns, "also treat named network namespaces as workloads");
  app.add_flag("--no-discover-netns", f.no_discover_netns, "never treat named network namespaces as workloads");
  app.add_option("--netns-dir", f.netns_dir, "where named namespaces live")->capture_default_str();
  app.add_option("--netns-labels", f.netns_labels, "JSON file: {\"<netns>\": {\"app\": \"web\"}}");
  app.add_option("--netns-prefix", f.netns_prefix, "only named namespaces whose names start with this");
  app.add_option("--control-group", f.control_group, "group allowed to change state besides root");
  app.add_option("--log-level", f.log_level, "trace|debug|info|warn|error")->capture_default_str();
}

// What learning trusts (issue 15): answered flows, one-way repeats, a fan-out quarantine, world held.
void add_learn_flags(CLI::App& app, Flags& f) {
  app.add_option("--learn-one-way-after", f.learn_one_way_after,
                 "learn an unanswered UDP flow (syslog, statsd) once it repeats over this period (0: never)")
      ->capture_default_str();
  app.add_option("--learn-one-way-events", f.learn_one_way_events,
                 "the distinct sightings over --learn-one-way-after a one-way flow needs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--learn-fanout-limit", f.learn_fanout_limit,
                 "new edges a learning workload may reach within --learn-fanout-window before it is quarantined "
                 "(its further new edges wait for review; 0: no quarantine)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--learn-fanout-window", f.learn_fanout_window, "the window of --learn-fanout-limit")
      ->capture_default_str();
  app.add_flag("--learn-trust-world", f.learn_trust_world,
               "learn new edges from world into a workload (default: they wait for review)");
}

void add_ruleset_flags(CLI::App& app, Flags& f) {
  app.add_option("--table", f.table, "the nftables table (family inet) topowall owns")->capture_default_str();
  app.add_option("--nflog-group", f.nflog_group, "NFLOG group for alerts")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--priority", f.priority, "priority of the prerouting hook (after DNAT at -100)")->capture_default_str();
  app.add_option("--mark-mask", f.mark_mask, "packet-mark bits topowall may use (transiently); others are never touched")
      ->capture_default_str();
  app.add_option("--failsafe", f.failsafe, "PROTO/PORT never blocked (repeatable)")->capture_default_str();
  app.add_option("--alert-sink", f.alert_sinks, "log, syslog, jsonl:/path, webhook:http://host:port/path (repeatable)")
      ->capture_default_str();
  app.add_option("--new-workload-learn-for", f.new_workload_learn_for,
                 "a workload first seen while monitoring/enforcing learns alone this long (0: enforced at once)")
      ->capture_default_str();
  app.add_option("--auto-promote-after", f.auto_promote_after,
                 "promote a learning workload to enforce once it has converged for this long: nothing new learned, held or attempted, not quarantined (0: never)")
      ->capture_default_str();
  app.add_option("--converge-after", f.converge_after,
                 "a learning workload has converged after this long with nothing new (status, workloads)")
      ->capture_default_str();
  add_learn_flags(app, f);
  app.add_option("--id-reuse-after", f.id_reuse_after,
                 "a workload id unused this long (no address) may go to another workload")
      ->capture_default_str();
}

void add_cluster_flags(CLI::App& app, Flags& f) {
  app.add_option("--cluster-etcd", f.cluster_etcd,
                 "cluster mode: share endpoints with other nodes through etcd at http://HOST:PORT");
  app.add_option("--node-name", f.node_name, "this node's name in the cluster (default: the host name)");
  app.add_option("--cluster-ca", f.cluster_tls.ca, "https etcd: PEM CA that signed etcd's certificate (default: system CAs)");
  app.add_option("--cluster-cert", f.cluster_tls.cert, "https etcd: PEM client certificate (etcd --client-cert-auth)");
  app.add_option("--cluster-key", f.cluster_tls.key, "https etcd: PEM key of the client certificate");
  app.add_option("--cluster-password-file", f.cluster_auth.password_file,
                 "etcd with auth (RBAC): file holding this node's etcd password (see deploy/etcd-rbac.sh)");
  app.add_option("--cluster-user", f.cluster_auth.user, "etcd user of this node (default: the node name)");
  app.add_option("--cluster-decisions-user", f.cluster_decisions.user,
                 "etcd user that may write operator decisions; without it decisions made here stay on this node");
  app.add_option("--cluster-decisions-password-file", f.cluster_decisions.password_file,
                 "file holding --cluster-decisions-user's password");
  app.add_option("--cluster-range", f.cluster_ranges,
                 "CIDR this node's workloads have addresses in (repeatable); other nodes accept its claims only there");
  app.add_option("--metrics-listen", f.metrics_listen,
                 "serve Prometheus /metrics and /healthz on HOST:PORT, e.g. 127.0.0.1:9617 (off by default)");
  app.add_flag("--uninstall", f.uninstall, "remove topowall's nftables table and exit");
}

void add_limit_flags(CLI::App& app, Flags& f) {
  app.add_option("--max-pending-per-source", f.pending_limits.per_source,
                 "pending flows kept per source workload; beyond, the least recently seen is evicted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--max-pending", f.pending_limits.total, "pending flows kept in all")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--max-import-bytes", f.max_import_bytes,
                 "largest graph `topowall topology import` may send (100k edges are about 18 MB)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 10, std::size_t{1} << 32));
  app.add_option("--journal-max-bytes", f.journal_max_bytes,
                 "size limit of the flow journal under --state-dir (`topowall replay`); past it the oldest half goes")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{64} << 10, std::uint64_t{1} << 40));
  app.add_option("--workload-alert-rate", f.alert_rate.per_second,
                 "alerts per second per source workload reaching the sinks (the rest are counted)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--workload-alert-burst", f.alert_rate.burst,
                 "alerts a source workload may send at once before --workload-alert-rate applies")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  app.add_flag("--no-anti-spoofing", f.no_anti_spoofing,
               "DANGEROUS: do not validate container source addresses (only for ports topowall must not judge)");
  app.add_flag("--set-bridge-netfilter", f.set_bridge_netfilter,
               "turn on net.bridge.bridge-nf-call-iptables/-ip6tables so bridged traffic reaches the firewall");
}

[[nodiscard]] Result<std::chrono::seconds> duration_flag(const char* flag, const std::string& text, const char* zero) {
  auto d = topology::parse_duration(text);
  if (!d) return Error{std::string(flag) + " '" + text + "' is not a duration like 30m, 2h or 7d" + zero};
  return *d;
}

[[nodiscard]] Result<std::vector<topology::NamedNetwork>> external_networks(const std::vector<std::string>& specs) {
  std::vector<topology::NamedNetwork> out;
  for (const auto& e : specs) {
    auto eq = e.find('=');
    auto cidr = eq == std::string::npos ? std::nullopt : Cidr::parse(e.substr(eq + 1));
    auto name = eq == std::string::npos ? std::string() : e.substr(0, eq);
    if (!cidr || !topology::is_plain_name(name) || topology::is_reserved_name(name))
      return Error{"--external-network '" + e + "' must be NAME=CIDR, e.g. corp=10.0.0.0/8 (NAME of A-Z a-z 0-9 . _ -, not host or world)"};
    out.push_back({*cidr, name});
  }
  return out;
}

[[nodiscard]] Result<std::uint32_t> mark_mask(const std::string& text) {
  std::uint32_t mask = 0;
  try {
    mask = static_cast<std::uint32_t>(std::stoul(text, nullptr, 0));
  } catch (...) {
    mask = 0;
  }
  // Ids are shifted into the mask: a gap in it would give two ids the same mark.
  const std::uint32_t bits = topology::mark_capacity(mask);
  if (bits < 64 || (bits & (bits + 1)) != 0)
    return Error{"--mark-mask '" + text + "' must be contiguous bits giving room for at least 64 ids, e.g. 0x0fff0000"};
  return mask;
}

[[nodiscard]] Result<std::set<topology::PortKey>> failsafe_ports(const std::vector<std::string>& specs) {
  std::set<topology::PortKey> out;
  for (const auto& f : specs) {
    auto slash = f.find('/');
    auto proto = slash == std::string::npos ? std::nullopt : parse_proto(f.substr(0, slash));
    int port = slash == std::string::npos ? 0 : std::atoi(f.c_str() + slash + 1);
    if (!proto || is_icmp(*proto) || port < 1 || port > 65535)
      return Error{"--failsafe '" + f + "' must be tcp|udp|sctp/PORT with PORT from 1 to 65535, e.g. tcp/22"};
    out.insert({static_cast<std::uint8_t>(*proto), static_cast<std::uint16_t>(port)});
  }
  return out;
}

std::vector<std::string> split_csv(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  for (std::string l; std::getline(ss, l, ',');)
    if (!l.empty()) out.push_back(l);
  return out;
}

// The agent's own settings.
[[nodiscard]] Status fill_agent(const Flags& f, agent::AgentConfig& cfg) {
  cfg.socket_path = f.socket;
  cfg.control_group = f.control_group;
  if (!f.mode.empty()) cfg.initial_mode = parse_mode(f.mode);
  cfg.after_learn = parse_mode(f.after_learn).value_or(Mode::monitor);  // CLI11 allows only the three
  if (!f.learn_for.empty()) {
    auto d = duration_flag("--learn-for", f.learn_for, "");
    if (!d) return d.error();
    cfg.learn_for = *d;
  }
  if (!f.identity_labels.empty()) cfg.identity.labels = split_csv(f.identity_labels);
  auto external = external_networks(f.external);
  if (!external) return external.error();
  cfg.external = std::move(*external);
  cfg.pending_limits = f.pending_limits;
  cfg.max_import_bytes = f.max_import_bytes;
  cfg.journal_max_bytes = f.journal_max_bytes;
  cfg.alert_rate = f.alert_rate;
  cfg.set_bridge_netfilter = f.set_bridge_netfilter;
  return ok_status();
}

// Per-workload learning and promotion.
[[nodiscard]] Status fill_workload_timing(const Flags& f, agent::AgentConfig& cfg) {
  auto fresh = duration_flag("--new-workload-learn-for", f.new_workload_learn_for, " (0: enforced at once)");
  if (!fresh) return fresh.error();
  cfg.new_workload_learn_for = *fresh;
  auto promote = duration_flag("--auto-promote-after", f.auto_promote_after, " (0: never)");
  if (!promote) return promote.error();
  cfg.auto_promote_after = *promote;
  auto converge = duration_flag("--converge-after", f.converge_after, "");
  if (!converge) return converge.error();
  cfg.converge_after = *converge;
  auto one_way = duration_flag("--learn-one-way-after", f.learn_one_way_after, " (0: never)");
  if (!one_way) return one_way.error();
  cfg.learn.one_way_after = *one_way;
  cfg.learn.one_way_events = f.learn_one_way_events;
  auto window = duration_flag("--learn-fanout-window", f.learn_fanout_window, "");
  if (!window) return window.error();
  if (window->count() <= 0) return Error{"--learn-fanout-window must be at least 1s (use --learn-fanout-limit 0 to turn the quarantine off)"};
  cfg.learn.fanout_window = *window;
  cfg.learn.fanout_limit = f.learn_fanout_limit;
  cfg.learn.world_pending = !f.learn_trust_world;
  auto reuse = duration_flag("--id-reuse-after", f.id_reuse_after, "");
  if (!reuse) return reuse.error();
  cfg.id_reuse_after = *reuse;
  return ok_status();
}

[[nodiscard]] Status fill_ruleset(const Flags& f, topology::RulesetConfig& rs) {
  rs.table = f.table;
  rs.nflog_group = static_cast<std::uint16_t>(f.nflog_group);
  rs.priority = f.priority;
  rs.guard = !f.no_anti_spoofing;
  auto mask = mark_mask(f.mark_mask);
  if (!mask) return mask.error();
  rs.mark_mask = *mask;
  auto failsafe = failsafe_ports(f.failsafe);
  if (!failsafe) return failsafe.error();
  rs.failsafe = std::move(*failsafe);
  return ok_status();
}

[[nodiscard]] Status fill_cluster(const Flags& f, Options& o) {
  for (const auto& r : f.cluster_ranges) {
    auto c = Cidr::parse(r);
    if (!c) return Error{"--cluster-range '" + r + "' must be a CIDR, e.g. 10.42.1.0/24"};
    o.cluster_ranges.push_back(*c);
  }
  if (!f.cluster_auth.user.empty() && f.cluster_auth.password_file.empty())
    return Error{"--cluster-user needs --cluster-password-file"};
  if (f.cluster_decisions.user.empty() != f.cluster_decisions.password_file.empty())
    return Error{"--cluster-decisions-user and --cluster-decisions-password-file go together"};
  o.cluster_auth = f.cluster_auth;
  o.cluster_decisions = f.cluster_decisions;
  return ok_status();
}

}  // namespace

void add_flags(CLI::App& app, Flags& flags) {
  // Every flag can also be a key of the file (`state-dir = "/var/lib/topowall"`, `alert-sink = ["log",
  // "syslog"]`, `discover-netns = true`); the command line wins over the file. A misspelt key is an
  // error, not a silently ignored setting on a firewall.
  app.set_config("--config", "", "TOML file of options (keys are the flag names without --), e.g. /etc/topowall/topowalld.conf");
  app.allow_config_extras(CLI::config_extras_mode::error);
  add_general_flags(app, flags);
  add_ruleset_flags(app, flags);
  add_cluster_flags(app, flags);
  add_limit_flags(app, flags);
}

std::string describe_config_error(const std::string& what) {
  const std::string extra = "INI was not able to parse ";  // CLI11's words for a key no option has
  if (what.rfind(extra, 0) == 0)
    return "--config: unknown key '" + what.substr(extra.size()) +
           "': not a topowalld option (keys are the flag names without --, see topowalld --help)";
  return "--config: " + what;
}

int parse_command_line(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ConfigError& e) {
    std::fprintf(stderr, "%s\n", describe_config_error(e.what()).c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
}

Result<Options> to_options(const Flags& f) {
  Options o;
  if (auto st = fill_agent(f, o.agent); !st) return st.error();
  if (auto st = fill_ruleset(f, o.agent.ruleset); !st) return st.error();
  if (auto st = fill_workload_timing(f, o.agent); !st) return st.error();
  if (!f.metrics_listen.empty())
    if (auto ep = metrics::parse_listen(f.metrics_listen); !ep) return ep.error();
  o.state_dir = f.state_dir;
  if (!f.runtime_socket.empty() && !f.cri_socket.empty())
    return Error{"--runtime-socket and --cri-socket both given: a node runs pods through one runtime; choose one"};
  o.agent.journal_path = f.state_dir + "/flows.journal";
  o.runtime_socket = f.runtime_socket;
  o.cri_socket = f.cri_socket;
  if (!f.runtime_timeout.empty()) {
    auto timeout = duration_flag("--runtime-timeout", f.runtime_timeout, "");
    if (!timeout) return timeout.error();
    if (timeout->count() == 0) return Error{"--runtime-timeout 0: a request with no time to answer always fails; give at least 1s"};
    if (*timeout > std::chrono::minutes(10))  // a stalled runtime would keep discovery blind that long
      return Error{"--runtime-timeout '" + f.runtime_timeout + "' is over 10m: a stalled runtime would keep discovery blind that long"};
    o.runtime_timeout = *timeout;
  }
  // Without a runtime API, named namespaces are the workloads unless told otherwise.
  o.discover_netns = ((f.runtime_socket.empty() && f.cri_socket.empty()) || f.discover_netns) && !f.no_discover_netns;
  o.netns = netns::NetnsOptions{f.netns_dir, f.netns_labels, f.netns_prefix};
  o.log_level = f.log_level;
  o.alert_sinks = f.alert_sinks;
  o.metrics_listen = f.metrics_listen;
  o.cluster_etcd = f.cluster_etcd;
  o.node_name = f.node_name;
  o.cluster_tls = f.cluster_tls;
  if (auto st = fill_cluster(f, o); !st) return st.error();
  o.uninstall = f.uninstall;
  return o;
}

}  // namespace topowall::app
