// topowalld's command line: the flags as typed (Flags), registered on a CLI11 app, then checked and
// turned into the Options the agent is wired from. Pure: nothing here opens a file, a socket or the
// kernel; what needs them (alert sinks, etcd TLS files, the node's host name) is checked at wiring.
#pragma once

#include <string>
#include <vector>

#include "agent/agent.hpp"
#include "cluster/etcd_client.hpp"
#include "common/http_post.hpp"
#include "netns/netns_watcher.hpp"
#include "topowall/result.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/rate_limit.hpp"

namespace CLI {
class App;
}

namespace topowall::app {

// Every flag, as CLI11 fills it in; the defaults are the documented ones (README, `--help`).
struct Flags {
  std::string state_dir = "/var/lib/topowall";
  std::string socket = "/run/topowall/topowall.sock";
  std::string runtime_socket;
  std::string cri_socket;
  std::string runtime_timeout;  // "" each runtime client's own default
  std::string mode;         // "" keeps the state directory's mode
  std::string learn_for;    // "" no learning window
  std::string after_learn = "monitor";
  std::string identity_labels;  // "" keeps the default list
  std::vector<std::string> external;
  bool discover_netns = false, no_discover_netns = false;
  std::string netns_dir = "/run/netns", netns_labels, netns_prefix;
  std::string control_group;
  std::string log_level = "info";
  std::string table = "topowall";
  int nflog_group = 5113;
  int priority = -95;
  std::string mark_mask = "0x0fff0000";
  std::vector<std::string> failsafe{"tcp/22"};
  std::vector<std::string> alert_sinks{"log"};
  std::string new_workload_learn_for = "0", auto_promote_after = "0", id_reuse_after = "10m";
  std::string learn_one_way_after = "60s", learn_fanout_window = "60s", converge_after = "10m";
  std::uint32_t learn_one_way_events = 3, learn_fanout_limit = 20;
  bool learn_trust_world = false;
  std::string cluster_etcd, node_name;
  TlsFiles cluster_tls;
  cluster::EtcdCredential cluster_auth, cluster_decisions;  // user "" = the node name / none
  std::vector<std::string> cluster_ranges;
  std::string metrics_listen;
  bool uninstall = false;
  topology::PendingLimits pending_limits;
  std::size_t max_import_bytes = 64 << 20;
  std::uint64_t journal_max_bytes = 64 << 20;
  topology::Rate alert_rate;
  bool no_anti_spoofing = false, set_bridge_netfilter = false;
};

// What topowalld runs with: the agent's configuration, and what main wires around it.
struct Options {
  agent::AgentConfig agent;
  std::string state_dir;
  std::string runtime_socket;    // "" no container runtime
  std::string cri_socket;        // "" no Kubernetes CRI runtime (exclusive with runtime_socket)
  std::chrono::seconds runtime_timeout{0};  // one runtime API request or CRI call; 0: the client's default
  bool discover_netns = false;   // named network namespaces as workloads
  netns::NetnsOptions netns;
  std::string log_level;
  std::vector<std::string> alert_sinks;  // specs; each opened (and so checked) at wiring
  std::string metrics_listen;            // "" off; else a valid HOST:PORT
  std::string cluster_etcd;              // "" single node
  std::string node_name;                 // "" the host name
  TlsFiles cluster_tls;
  cluster::EtcdCredential cluster_auth;       // this node's etcd user (RBAC); user "" = the node name
  cluster::EtcdCredential cluster_decisions;  // may write operator decisions; empty: decisions stay local
  std::vector<Cidr> cluster_ranges;           // the addresses this node's workloads may have
  bool uninstall = false;
};

// Registers every flag of topowalld on `app`, bound to `flags` (CLI11 checks ranges and choices).
void add_flags(CLI::App& app, Flags& flags);

// Parses the command line and the --config file. Returns -1 to go on, else the exit code: 0 after
// --help, 2 with the problem said on stderr for a bad configuration file, CLI11's own for other errors.
int parse_command_line(CLI::App& app, int argc, const char* const* argv);
// What a CLI11 configuration-file error says, for a person: the unknown key named as such.
std::string describe_config_error(const std::string& what);

// Checks what CLI11 cannot and converts: durations, NAME=CIDR networks, the mark mask, failsafe
// ports, the metrics address. The Error names the flag, the value, and what it should look like.
[[nodiscard]] Result<Options> to_options(const Flags& flags);

}  // namespace topowall::app
