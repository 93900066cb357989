// topowalld: the per-node agent. The flags become Options (app/options.hpp); here they are wired.
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
#include "app/options.hpp"
#include "cluster/etcd_store.hpp"
#include "conntrack/ct_listener.hpp"
#include "metrics/http_server.hpp"
#include "netns/netns_watcher.hpp"
#include "nflog/nflog.hpp"
#include "nft/monitor.hpp"
#include "nft/writer.hpp"
#include "rtnl/address_watcher.hpp"
#include "runtime/cri_client.hpp"
#include "runtime/docker_client.hpp"
#include "store/state_store.hpp"

using namespace topowall;

namespace {

// Logs why topowalld stops and gives its exit code: 2 for a bad option, 1 for what the system refused.
int fail(int code, const std::string& message) {
  spdlog::error("{}", message);
  return code;
}

int uninstall(const std::string& table) {
  nft::NftWriter w;
  if (auto st = w.open(); !st) return fail(1, st.error().message);
  if (auto st = w.remove_table(table); !st) return fail(1, st.error().message);
  spdlog::info("table inet {} removed", table);
  return 0;
}

// Cluster mode: 0, or the exit code after logging why not.
int add_cluster(boost::asio::io_context& io, app::Options& o, agent::Adapters& ad) {
  if (o.cluster_etcd.empty()) return 0;
  if (o.node_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    o.node_name = host;
  }
  cluster::EtcdOptions eo{o.cluster_etcd, o.node_name};
  eo.tls = o.cluster_tls;
  eo.auth = o.cluster_auth;
  if (!eo.auth.password_file.empty() && eo.auth.user.empty()) eo.auth.user = o.node_name;
  eo.decisions = o.cluster_decisions;
  eo.ranges = o.cluster_ranges;
  auto store = std::make_unique<cluster::EtcdStore>(io, eo);
  if (auto st = store->validate(); !st) return fail(2, st.error().message);
  spdlog::info("cluster mode: node {} sharing endpoints through {}{}", o.node_name, o.cluster_etcd,
               eo.auth.empty() ? " (no etcd user: etcd must not enforce RBAC)" : " as etcd user " + eo.auth.user);
  if (eo.ranges.empty())
    spdlog::warn("cluster mode without --cluster-range: the other nodes will ignore this node's endpoints");
  ad.cluster = std::move(store);
  return 0;
}

// Every adapter of the node: 0, or the exit code after logging the first that could not be made.
int add_adapters(boost::asio::io_context& io, app::Options& o, agent::Adapters& ad) {
  auto store = std::make_unique<store::FileStateStore>(o.state_dir);
  if (auto st = store->prepare(); !st) return fail(1, st.error().message);
  ad.store = std::move(store);
  const bool timeout = o.runtime_timeout.count() > 0;  // else each client's default
  if (!o.runtime_socket.empty())
    ad.runtime = timeout ? std::make_unique<runtime::DockerClient>(io, o.runtime_socket, o.runtime_timeout)
                         : std::make_unique<runtime::DockerClient>(io, o.runtime_socket);
  if (!o.cri_socket.empty()) {
    runtime::CriOptions cri{.socket_path = o.cri_socket};
    if (timeout) cri.call_timeout = o.runtime_timeout;
    ad.runtime = std::make_unique<runtime::CriClient>(io, cri);
  }
  if (o.discover_netns) ad.netns = std::make_unique<netns::NetnsWatcher>(io, o.netns);
  conntrack::CtListenerOptions ct;
  ct.event_mark = topology::event_mark(o.agent.ruleset.mark_mask);  // only what the ruleset marked
  ad.flows = std::make_unique<conntrack::CtListener>(io, ct);
  ad.addresses = std::make_unique<rtnl::RtnlAddressWatcher>(io);
  auto writer = std::make_unique<nft::NftWriter>();
  if (auto st = writer->open(); !st) return fail(1, "nftables: " + st.error().message);
  ad.writer = std::move(writer);
  ad.ruleset_watch = std::make_unique<nft::NftMonitor>(io, o.agent.ruleset.table);
  ad.alerts = std::make_unique<nflog::NflogListener>(io, o.agent.ruleset.nflog_group);
  ad.conntrack_delete = conntrack::delete_conntrack;
  for (const auto& spec : o.alert_sinks) {
    std::string err;
    auto sink = alerts::make_sink(io, spec, err);
    if (!sink) return fail(2, "--alert-sink: " + err);
    ad.sinks.push_back(std::move(sink));
  }
  return add_cluster(io, o, ad);
}

// Runs the agent until SIGTERM or SIGINT.
int run(boost::asio::io_context& io, const app::Options& o, agent::Adapters ad) {
  agent::Agent agent(io, o.agent, std::move(ad));
  // Read-only: the status a root `topowall status` would see, without the right to change anything.
  metrics::MetricsServer metrics_server(io, [&agent] {
    return agent.handle({{"v", control::kProtocolVersion}, {"method", "status"}}, control::Peer{}, nullptr)["result"];
  });
  metrics_server.set_radar([&agent] { return agent.radar_json(); });
  if (!o.metrics_listen.empty())
    if (auto st = metrics_server.start(o.metrics_listen); !st) return fail(1, st.error().message);
  if (auto st = agent.start(); !st) return fail(1, "start-up failed: " + st.error().message);
  spdlog::info("topowalld running; control socket {}", o.agent.socket_path);

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer grace(io);
  signals.async_wait([&](boost::system::error_code, int sig) {
    spdlog::info("signal {}: saving state and exiting", sig);
    metrics_server.stop();
    agent.stop();
    if (o.cluster_etcd.empty()) return io.stop();
    // The lease's revoke is queued: give it a moment so the other nodes drop our endpoints now, not at its TTL.
    grace.expires_after(std::chrono::seconds(1));
    grace.async_wait([&](boost::system::error_code) { io.stop(); });
  });
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed log pipe or peer must be an error on that write, never the death of the firewall's agent.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App cli{"topowalld: learns the node's container topology and enforces it"};
  app::Flags flags;
  app::add_flags(cli, flags);
  if (int code = app::parse_command_line(cli, argc, argv); code >= 0) return code;

  spdlog::set_default_logger(spdlog::stderr_color_mt("topowalld"));
  spdlog::set_level(spdlog::level::from_str(flags.log_level));

  auto opts = app::to_options(flags);
  if (!opts) return fail(2, opts.error().message);
  if (opts->uninstall) return uninstall(opts->agent.ruleset.table);
  boost::asio::io_context io;
  agent::Adapters ad;
  if (int code = add_adapters(io, *opts, ad)) return code;
  return run(io, *opts, std::move(ad));
}
