// What both the agent's store and the operator's CLI need to speak to etcd's JSON gateway: one call,
// authentication (etcd RBAC), and writing operator decisions.
//
// Why passwords and not the client certificate's common name: etcd's JSON gateway cannot carry a
// certificate's identity to its RBAC (it refuses, HTTP 400, any client certificate with a common name
// once auth is on). Each node is therefore an etcd user with a password, and the token from
// /v3/auth/authenticate goes with every request; client certificates (without a CN) still guard the
// transport under --client-cert-auth.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http_post.hpp"
#include "topowall/cluster.hpp"
#include "topowall/result.hpp"

namespace topowall::cluster {

// An etcd user; the password is read from a file (never a flag: flags show in `ps`).
struct EtcdCredential {
  std::string user, password_file;
  bool empty() const { return user.empty(); }
};

// The password in `file`, without its trailing newline; the error names the file.
[[nodiscard]] Result<std::string> read_password(const std::string& file);

// Where etcd is and how to reach it.
struct EtcdTarget {
  HttpUrl url;
  std::shared_ptr<boost::asio::ssl::context> tls;  // for https
};

using EtcdReply = std::function<void(Result<nlohmann::json>)>;
// One POST to the gateway; `token` (may be empty) goes as the Authorization header. Anything but a
// 200 with a JSON object is an Error carrying etcd's own message (e.g. "etcdserver: permission denied").
void etcd_call(boost::asio::io_context& io, const EtcdTarget& t, const std::string& path, const nlohmann::json& body,
               const std::string& token, EtcdReply done);
// /v3/auth/authenticate: the token, or why not.
void etcd_authenticate(boost::asio::io_context& io, const EtcdTarget& t, const std::string& user,
                       const std::string& password, std::function<void(Result<std::string>)> done);

// The key of a decision: <root>decisions/<src>/<dst>/<proto>/<port>.
std::string decision_key(const std::string& root, const ClusterDecision& d);

// The operator's side (the CLI): authenticate as `cred` (if any) and write each decision, blocking.
struct DecisionWriter {
  std::string url;
  TlsFiles tls;
  EtcdCredential cred;
  std::string root = "/topowall/v1/";
  std::chrono::seconds timeout{5};
};
[[nodiscard]] Status write_decisions(const DecisionWriter& w, const std::vector<ClusterDecision>& decisions);

}  // namespace topowall::cluster
