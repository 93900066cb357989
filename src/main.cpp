// topowalld: the per-node agent.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <csignal>

#include "agent/agent.hpp"
#include "alerts/sinks.hpp"
#include "nflog/nflog.hpp"
#include "cluster/etcd_store.hpp"
#include "metrics/http_server.hpp"
#include "nft/monitor.hpp"
#include "nft/writer.hpp"
#include "conntrack/ct_listener.hpp"
#include "netns/netns_watcher.hpp"
#include "rtnl/address_watcher.hpp"
#include "runtime/docker_client.hpp"
#include "store/state_store.hpp"
#include "topowall/topology/duration.hpp"

using namespace topowall;

int main(int argc, char** argv) {
  // A closed log pipe or peer must be an error on that write, never the death of the firewall's agent.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"topowalld: learns the node's container topology and enforces it"};
  std::string state_dir = "/var/lib/topowall", socket = "/run/topowall/topowall.sock", runtime_socket, mode_s,
              learn_for_s, after_learn_s = "monitor", labels_csv, netns_dir = "/run/netns", netns_labels,
              control_group, log_level = "info";
  std::vector<std::string> external, sinks{"log"}, failsafe{"tcp/22"};
  bool discover_netns = false, no_discover_netns = false, uninstall = false;
  std::string table = "topowall", mark_mask = "0x0fff0000", new_learn_s = "0", promote_s = "0", id_reuse_s = "10m";
  int nflog_group = 5113, priority = -95;
  app.add_option("--state-dir", state_dir, "where the graph and mode persist")->capture_default_str();
  app.add_option("--socket", socket, "control socket path")->capture_default_str();
  app.add_option("--runtime-socket", runtime_socket,
                 "Docker Engine API socket (dockerd, or `podman system service`)");
  app.add_option("--mode", mode_s, "initial mode of a fresh state directory: learn|monitor|enforce")
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}));
  app.add_option("--learn-for", learn_for_s, "learning window, e.g. 30m, 2h, 7d; then --after-learn");
  app.add_option("--after-learn", after_learn_s, "mode when the learning window ends")
      ->check(CLI::IsMember({"learn", "monitor", "enforce"}))
      ->capture_default_str();
  app.add_option("--identity-labels", labels_csv, "label keys naming a workload, first present wins")
      ->default_str("app,app.kubernetes.io/name");
  app.add_option("--external-network", external, "NAME=CIDR: name an outside network instead of `world`");
  app.add_flag("--discover-netns", discover_netns, "also treat named network namespaces as workloads");
  app.add_flag("--no-discover-netns", no_discover_netns, "never treat named network namespaces as workloads");
  app.add_option("--netns-dir", netns_dir, "where named namespaces live")->capture_default_str();
  app.add_option("--netns-labels", netns_labels, "JSON file: {\"<netns>\": {\"app\": \"web\"}}");
  std::string netns_prefix;
  app.add_option("--netns-prefix", netns_prefix, "only named namespaces whose names start with this");
  app.add_option("--control-group", control_group, "group allowed to change state besides root");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--table", table, "the nftables table (family inet) topowall owns")->capture_default_str();
  app.add_option("--nflog-group", nflog_group, "NFLOG group for alerts")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--priority", priority, "priority of the prerouting hook (after DNAT at -100)")->capture_default_str();
  app.add_option("--mark-mask", mark_mask, "packet-mark bits topowall may use (transiently); others are never touched")
      ->capture_default_str();
  app.add_option("--failsafe", failsafe, "PROTO/PORT never blocked (repeatable)")->capture_default_str();
  app.add_option("--alert-sink", sinks, "log, syslog, jsonl:/path, webhook:http://host:port/path (repeatable)")
      ->capture_default_str();
  app.add_option("--new-workload-learn-for", new_learn_s,
                 "a workload first seen while monitoring/enforcing learns alone this long (0: enforced at once)")
      ->capture_default_str();
  app.add_option("--auto-promote-after", promote_s, "promote a learning workload to enforce after this quiet period (0: never)")
      ->capture_default_str();
  app.add_option("--id-reuse-after", id_reuse_s, "a workload id unused this long (no address) may go to another workload")
      ->capture_default_str();
  std::string metrics_listen, cluster_etcd, node_name;
  app.add_option("--cluster-etcd", cluster_etcd,
                 "cluster mode: share endpoints with other nodes through etcd at http://HOST:PORT");
  app.add_option("--node-name", node_name, "this node's name in the cluster (default: the host name)");
  TlsFiles cluster_tls;
  app.add_option("--cluster-ca", cluster_tls.ca, "https etcd: PEM CA that signed etcd's certificate (default: system CAs)");
  app.add_option("--cluster-cert", cluster_tls.cert, "https etcd: PEM client certificate (etcd --client-cert-auth)");
  app.add_option("--cluster-key", cluster_tls.key, "https etcd: PEM key of the client certificate");
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus /metrics and /healthz on HOST:PORT, e.g. 127.0.0.1:9617 (off by default)");
  app.add_flag("--uninstall", uninstall, "remove topowall's nftables table and exit");
  agent::AgentConfig cfg;
  app.add_option("--max-pending-per-source", cfg.pending_limits.per_source,
                 "pending flows kept per source workload; beyond, the least recently seen is evicted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--max-pending", cfg.pending_limits.total, "pending flows kept in all")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--workload-alert-rate", cfg.alert_rate.per_second,
                 "alerts per second per source workload reaching the sinks (the rest are counted)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--workload-alert-burst", cfg.alert_rate.burst,
                 "alerts a source workload may send at once before --workload-alert-rate applies")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  bool no_anti_spoofing = false, set_bridge_netfilter = false;
  app.add_flag("--no-anti-spoofing", no_anti_spoofing,
               "DANGEROUS: do not validate container source addresses (only for ports topowall must not judge)");
  app.add_flag("--set-bridge-netfilter", set_bridge_netfilter,
               "turn on net.bridge.bridge-nf-call-iptables/-ip6tables so bridged traffic reaches the firewall");
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("topowalld");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  cfg.socket_path = socket;
  cfg.control_group = control_group;
  if (!mode_s.empty()) cfg.initial_mode = parse_mode(mode_s);
  cfg.after_learn = *parse_mode(after_learn_s);
  if (!learn_for_s.empty()) {
    cfg.learn_for = topology::parse_duration(learn_for_s);
    if (!cfg.learn_for) {
      spdlog::error("--learn-for '{}' is not a duration like 30m, 2h or 7d", learn_for_s);
      return 2;
    }
  }
  if (!labels_csv.empty()) {
    cfg.identity.labels.clear();
    std::stringstream ss(labels_csv);
    for (std::string l; std::getline(ss, l, ',');)
      if (!l.empty()) cfg.identity.labels.push_back(l);
  }
  for (const auto& e : external) {
    auto eq = e.find('=');
    auto cidr = eq == std::string::npos ? std::nullopt : Cidr::parse(e.substr(eq + 1));
    auto name = eq == std::string::npos ? std::string() : e.substr(0, eq);
    if (!cidr || !topology::is_valid_name(name) || topology::is_reserved_name(name)) {
      spdlog::error("--external-network '{}' must be NAME=CIDR, e.g. corp=10.0.0.0/8 (NAME not host or world)", e);
      return 2;
    }
    cfg.external.push_back({*cidr, name});
  }

  cfg.ruleset.table = table;
  cfg.ruleset.nflog_group = static_cast<std::uint16_t>(nflog_group);
  cfg.ruleset.priority = priority;
  cfg.ruleset.guard = !no_anti_spoofing;
  cfg.set_bridge_netfilter = set_bridge_netfilter;
  try {
    cfg.ruleset.mark_mask = static_cast<std::uint32_t>(std::stoul(mark_mask, nullptr, 0));
  } catch (...) {
    cfg.ruleset.mark_mask = 0;
  }
  if (topology::mark_capacity(cfg.ruleset.mark_mask) < 64) {
    spdlog::error("--mark-mask '{}' must be contiguous bits giving room for at least 64 ids, e.g. 0x0fff0000", mark_mask);
    return 2;
  }
  cfg.ruleset.failsafe.clear();
  for (const auto& f : failsafe) {
    auto slash = f.find('/');
    auto proto = slash == std::string::npos ? std::nullopt : parse_proto(f.substr(0, slash));
    int port = slash == std::string::npos ? 0 : std::atoi(f.c_str() + slash + 1);
    if (!proto || is_icmp(*proto) || port < 1 || port > 65535) {
      spdlog::error("--failsafe '{}' must be tcp|udp|sctp/PORT", f);
      return 2;
    }
    cfg.ruleset.failsafe.insert({static_cast<std::uint8_t>(*proto), static_cast<std::uint16_t>(port)});
  }
  for (auto [text, out] : {std::pair{&new_learn_s, &cfg.new_workload_learn_for}, std::pair{&promote_s, &cfg.auto_promote_after},
                          std::pair{&id_reuse_s, &cfg.id_reuse_after}}) {
    auto d = topology::parse_duration(*text);
    if (!d) {
      spdlog::error("'{}' is not a duration like 30m", *text);
      return 2;
    }
    *out = *d;
  }

  if (!metrics_listen.empty())
    if (auto ep = metrics::parse_listen(metrics_listen); !ep) {
      spdlog::error("{}", ep.error().message);
      return 2;
    }

  boost::asio::io_context io;
  if (uninstall) {
    nft::NftWriter w;
    if (auto st = w.open(); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
    auto st = w.remove_table(table);
    if (!st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
    spdlog::info("table inet {} removed", table);
    return 0;
  }
  auto store = std::make_unique<store::FileStateStore>(state_dir);
  if (auto st = store->prepare(); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  agent::Adapters ad;
  ad.store = std::move(store);
  if (!runtime_socket.empty()) ad.runtime = std::make_unique<runtime::DockerClient>(io, runtime_socket);
  if ((runtime_socket.empty() || discover_netns) && !no_discover_netns)
    ad.netns = std::make_unique<netns::NetnsWatcher>(io, netns::NetnsOptions{netns_dir, netns_labels, netns_prefix});
  ad.flows = std::make_unique<conntrack::CtListener>(io);
  ad.addresses = std::make_unique<rtnl::RtnlAddressWatcher>(io);
  auto writer = std::make_unique<nft::NftWriter>();
  if (auto st = writer->open(); !st) {
    spdlog::error("nftables: {}", st.error().message);
    return 1;
  }
  ad.writer = std::move(writer);
  ad.ruleset_watch = std::make_unique<nft::NftMonitor>(io, cfg.ruleset.table);
  ad.alerts = std::make_unique<nflog::NflogListener>(io, cfg.ruleset.nflog_group);
  ad.conntrack_delete = conntrack::delete_conntrack;
  for (const auto& spec : sinks) {
    std::string err;
    auto sink = alerts::make_sink(io, spec, err);
    if (!sink) {
      spdlog::error("--alert-sink: {}", err);
      return 2;
    }
    ad.sinks.push_back(std::move(sink));
  }

  if (!cluster_etcd.empty()) {
    if (node_name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      node_name = host;
    }
    cluster::EtcdOptions eo{cluster_etcd, node_name};
    eo.tls = cluster_tls;
    auto store = std::make_unique<cluster::EtcdStore>(io, eo);
    if (auto st = store->validate(); !st) {
      spdlog::error("{}", st.error().message);
      return 2;
    }
    spdlog::info("cluster mode: node {} sharing endpoints through {}", node_name, cluster_etcd);
    ad.cluster = std::move(store);
  }

  agent::Agent agent(io, cfg, std::move(ad));
  // Read-only: the status a root `topowall status` would see, without the right to change anything.
  metrics::MetricsServer metrics_server(io, [&agent] {
    return agent.handle({{"v", control::kProtocolVersion}, {"method", "status"}}, control::Peer{}, nullptr)["result"];
  });
  if (!metrics_listen.empty())
    if (auto st = metrics_server.start(metrics_listen); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  if (auto st = agent.start(); !st) {
    spdlog::error("start-up failed: {}", st.error().message);
    return 1;
  }
  spdlog::info("topowalld running; control socket {}", socket);

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer grace(io);
  signals.async_wait([&](boost::system::error_code, int sig) {
    spdlog::info("signal {}: saving state and exiting", sig);
    metrics_server.stop();
    agent.stop();
    if (cluster_etcd.empty()) return io.stop();
    // The lease's revoke is queued: give it a moment so the other nodes drop our endpoints now, not at its TTL.
    grace.expires_after(std::chrono::seconds(1));
    grace.async_wait([&](boost::system::error_code) { io.stop(); });
  });
  io.run();
  return 0;
}
