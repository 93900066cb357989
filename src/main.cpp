// topowalld: the per-node agent.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/agent.hpp"
#include "conntrack/ct_listener.hpp"
#include "netns/netns_watcher.hpp"
#include "rtnl/address_watcher.hpp"
#include "runtime/docker_client.hpp"
#include "store/state_store.hpp"
#include "topowall/topology/duration.hpp"

using namespace topowall;

int main(int argc, char** argv) {
  CLI::App app{"topowalld: learns the node's container topology and enforces it"};
  std::string state_dir = "/var/lib/topowall", socket = "/run/topowall/topowall.sock", runtime_socket, mode_s,
              learn_for_s, after_learn_s = "monitor", labels_csv, netns_dir = "/run/netns", netns_labels,
              control_group, log_level = "info";
  std::vector<std::string> external;
  bool discover_netns = false, no_discover_netns = false;
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
  app.add_option("--control-group", control_group, "group allowed to change state besides root");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("topowalld");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  agent::AgentConfig cfg;
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
    if (!cidr || !topology::is_valid_name(name)) {
      spdlog::error("--external-network '{}' must be NAME=CIDR, e.g. corp=10.0.0.0/8", e);
      return 2;
    }
    cfg.external.push_back({*cidr, name});
  }

  boost::asio::io_context io;
  auto store = std::make_unique<store::FileStateStore>(state_dir);
  if (auto st = store->prepare(); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  agent::Adapters ad;
  ad.store = std::move(store);
  if (!runtime_socket.empty()) ad.runtime = std::make_unique<runtime::DockerClient>(io, runtime_socket);
  if ((runtime_socket.empty() || discover_netns) && !no_discover_netns)
    ad.netns = std::make_unique<netns::NetnsWatcher>(io, netns::NetnsOptions{netns_dir, netns_labels});
  ad.flows = std::make_unique<conntrack::CtListener>(io);
  ad.addresses = std::make_unique<rtnl::RtnlAddressWatcher>(io);

  agent::Agent agent(io, cfg, std::move(ad));
  if (auto st = agent.start(); !st) {
    spdlog::error("start-up failed: {}", st.error().message);
    return 1;
  }
  spdlog::info("topowalld running; control socket {}", socket);

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code, int sig) {
    spdlog::info("signal {}: saving state and exiting", sig);
    agent.stop();
    io.stop();
  });
  io.run();
  return 0;
}
