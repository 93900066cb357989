// Cluster mode from the operator's side: `flows approve|deny` and `edges remove` write the decision to
// etcd with the operator's own credential (a node's etcd role may only read decisions), after the agent
// has applied it on its node. Flags or TOPOWALL_ETCD* environment variables.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace topowall::cli {

struct EtcdArgs {
  std::string url, ca, cert, key, user, password_file;
};

// Adds --etcd, --etcd-ca, --etcd-cert, --etcd-key, --etcd-user, --etcd-password-file to `cmd`.
std::shared_ptr<EtcdArgs> add_etcd_flags(CLI::App& cmd);

// After the agent's answer: writes its `decisions` to etcd when --etcd is given (0, or 1 and why not),
// else says (on stderr) when the decision stays on this node.
int share_decisions(const EtcdArgs& etcd, const nlohmann::json& answer);

}  // namespace topowall::cli
