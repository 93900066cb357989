#include "cluster_write.hpp"

#include <iostream>

#include "cluster/etcd_client.hpp"
#include "cluster/etcd_codec.hpp"
#include "commands.hpp"

namespace topowall::cli {

std::shared_ptr<EtcdArgs> add_etcd_flags(CLI::App& cmd) {
  auto a = std::make_shared<EtcdArgs>();
  const std::string g = "Cluster (write the decision to etcd as the operator)";
  cmd.add_option("--etcd", a->url, "etcd's URL, e.g. https://10.0.0.5:2379")->envname("TOPOWALL_ETCD")->group(g);
  cmd.add_option("--etcd-ca", a->ca, "PEM CA that signed etcd's certificate")->envname("TOPOWALL_ETCD_CA")->group(g);
  cmd.add_option("--etcd-cert", a->cert, "PEM client certificate (no common name: etcd's gateway refuses one)")
      ->envname("TOPOWALL_ETCD_CERT")
      ->group(g);
  cmd.add_option("--etcd-key", a->key, "PEM key of the client certificate")->envname("TOPOWALL_ETCD_KEY")->group(g);
  cmd.add_option("--etcd-user", a->user, "the operator's etcd user (role topowall-operator)")
      ->envname("TOPOWALL_ETCD_USER")
      ->group(g);
  cmd.add_option("--etcd-password-file", a->password_file, "file holding the operator's etcd password")
      ->envname("TOPOWALL_ETCD_PASSWORD_FILE")
      ->group(g);
  return a;
}

int share_decisions(const EtcdArgs& etcd, const nlohmann::json& answer) {
  const auto& list = answer.contains("decisions") ? answer["decisions"] : nlohmann::json::array();
  if (etcd.url.empty()) {
    if (answer.value("cluster_shared", true) == false && !list.empty())
      std::cerr << "topowall: applied on this node only; to apply it on every node, repeat with --etcd and the "
                   "operator's etcd credential (--etcd-user, --etcd-password-file)\n";
    return 0;
  }
  if (!etcd.user.empty() && etcd.password_file.empty()) return fail("--etcd-user needs --etcd-password-file", 2);
  std::vector<ClusterDecision> ds;
  for (const auto& d : list) {
    auto parsed = cluster::decode_decision(d.dump());
    if (!parsed) return fail("the agent answered a decision that cannot be shared: " + parsed.error().message, 1);
    parsed->node = etcd.user.empty() ? "operator" : etcd.user;
    ds.push_back(*parsed);
  }
  if (ds.empty()) return 0;
  cluster::DecisionWriter w;
  w.url = etcd.url;
  w.tls = {etcd.ca, etcd.cert, etcd.key};
  w.cred = {etcd.user, etcd.password_file};
  if (auto st = write_decisions(w, ds); !st)
    return fail("applied on this node, but not written to etcd (the other nodes do not have it): " +
                    st.error().message,
                1);
  std::cerr << "topowall: written to etcd for every node (" << ds.size() << " decision" << (ds.size() == 1 ? "" : "s")
            << ")\n";
  return 0;
}

}  // namespace topowall::cli
