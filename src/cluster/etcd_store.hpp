// Cluster mode over etcd v3 (its JSON gateway, so no gRPC stack): each node writes its endpoints and the
// address ranges it speaks for under a lease it keeps alive, and watches the others'. A node that dies
// stops renewing; its endpoints vanish with the lease.
//
// Trust: etcd's RBAC lets a node write only under its own prefix (deploy/etcd-rbac.sh), and every reader
// checks again: a value must name the node (and id) of its key, and a node's claims count only inside the
// ranges it announced, which may not overlap an earlier node's. Decisions are the operator's: a node
// writes one only with a decisions credential (--cluster-decisions-user).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/etcd_client.hpp"
#include "cluster/etcd_codec.hpp"
#include "cluster/node_ranges.hpp"
#include "common/http_post.hpp"
#include "topowall/cluster.hpp"
#include "topowall/result.hpp"

namespace topowall::cluster {

struct EtcdOptions {
  std::string url;   // http://host:port of an etcd member
  std::string node;  // this node's name: its endpoints live under <root>endpoints/<node>/
  std::string root = "/topowall/v1/";  // endpoints/, ranges/ and decisions/ below it
  std::chrono::seconds ttl{15};  // how long a silent node's endpoints outlive it
  TlsFiles tls;                  // for an https URL: the CA, and a client certificate if etcd asks for one
  EtcdCredential auth;           // this node's etcd user (RBAC); empty: etcd without auth
  EtcdCredential decisions;      // a credential that may write decisions; empty: decisions stay local
  std::vector<Cidr> ranges;      // the addresses this node's workloads may have (announced to the others)
};

class EtcdStore final : public ClusterStore {
 public:
  EtcdStore(boost::asio::io_context& io, EtcdOptions opts);
  ~EtcdStore() override;
  // Checks the URL, node name and credentials; start() then connects in the background and retries.
  [[nodiscard]] Status validate() const;
  void start(ClusterHandler handler) override;
  void stop() override;
  void publish(const ClusterEndpoint& e) override;
  void withdraw(const std::string& id) override;
  bool decide(const ClusterDecision& d) override;
  ClusterStats stats() const override { return stats_; }

 private:
  struct Watch;
  enum class As { node, decisions, nobody };  // whose token a request carries
  using Lost = std::function<void(const std::string&)>;
  static void read_watch(const std::shared_ptr<Watch>& w, Lost lost);
  using Reply = std::function<void(Result<nlohmann::json>)>;
  void request(std::string path, nlohmann::json body, Reply done, As as = As::node);  // queued: writes keep their order
  void pump();
  void connect();
  void authenticate(std::uint64_t gen, std::function<void()> then);
  void grant();
  void read_all(std::uint64_t gen, const std::string& from, long long revision, std::shared_ptr<nlohmann::json> acc);
  void on_range(const nlohmann::json& r);
  void start_watch(long long revision);
  void on_watch_message(const nlohmann::json& m);
  void keepalive();
  void fail(const std::string& what);
  void put(const ClusterEndpoint& e);
  void put_ranges();
  Reply written(std::string what);
  void put_decision(const ClusterDecision& d);
  void write_decision(const ClusterDecision& d);

  // Reading (etcd_view.cpp): what other nodes wrote, checked.
  std::optional<ClusterEndpoint> decode_kv(const std::string& key, const nlohmann::json& kv);
  void on_ranges_kv(const std::string& key, const nlohmann::json* kv);  // null: deleted
  void settle_ranges();
  ClusterEndpoint within_ranges(const std::string& key, const ClusterEndpoint& e);
  void refilter();
  void on_endpoint_kv(const std::string& key, const nlohmann::json* kv);  // null: deleted
  void on_decision_kv(const std::string& key, const nlohmann::json& kv);

  std::string endpoints() const { return opts_.root + "endpoints/"; }
  std::string ranges_prefix() const { return opts_.root + "ranges/"; }
  std::string decisions() const { return opts_.root + "decisions/"; }
  std::string key(const std::string& id) const { return endpoints() + opts_.node + "/" + id; }
  std::string ranges_key() const { return ranges_prefix() + opts_.node; }

  boost::asio::io_context& io_;
  EtcdOptions opts_;
  EtcdTarget target_;
  std::string tls_error_, password_error_;
  std::string password_, decisions_password_;
  std::string token_, decisions_token_;
  std::chrono::steady_clock::time_point token_at_{};
  ClusterHandler handler_;
  bool stopped_ = true;
  long long lease_ = 0;
  std::uint64_t generation_ = 0;  // bumps on every reconnect: stale callbacks see a newer one and stop
  std::map<std::string, ClusterEndpoint> local_;    // id -> this node's endpoint
  std::map<std::string, ClusterEndpoint> claimed_;  // etcd key -> another node's endpoint, as written
  std::map<std::string, ClusterEndpoint> remote_;   // etcd key -> the same within its node's ranges (handed on)
  NodeRanges ranges_;
  std::set<std::pair<std::string, IpAddr>> refused_claims_;  // counted and logged once each
  std::set<std::pair<std::string, IpAddr>> warned_outside_;  // own addresses outside own ranges, logged once
  std::vector<ClusterDecision> unsent_;                      // decided while etcd was out of reach
  bool told_decisions_local_ = false;
  struct Pending {
    std::string path;
    nlohmann::json body;
    Reply done;
    As as = As::node;
  };
  std::deque<Pending> queue_;
  bool busy_ = false;
  std::shared_ptr<Watch> watch_;
  boost::asio::steady_timer retry_, renew_;
  std::chrono::milliseconds backoff_{500};
  ClusterStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace topowall::cluster
