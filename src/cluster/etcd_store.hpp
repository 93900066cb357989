// Cluster mode over etcd v3 (its JSON gateway, so no gRPC stack): each node
// writes its endpoints under a lease it keeps alive, and watches the others'.
// A node that dies stops renewing; its endpoints vanish with the lease.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/http_post.hpp"
#include "topowall/cluster.hpp"
#include "topowall/result.hpp"

namespace topowall::cluster {

struct EtcdOptions {
  std::string url;   // http://host:port of an etcd member
  std::string node;  // this node's name: its endpoints live under <root>endpoints/<node>/
  std::string root = "/topowall/v1/";  // endpoints/ and decisions/ below it
  std::chrono::seconds ttl{15};  // how long a silent node's endpoints outlive it
  TlsFiles tls;                  // for an https URL: the CA, and a client certificate if etcd asks for one
};

// Keys are stored base64 in etcd's JSON API.
std::string base64_encode(const std::string& in);
std::string base64_decode(const std::string& in);
// The first key after every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(std::string prefix);
// What a node writes for one endpoint, and back; nullopt (and why) if a value is unusable.
std::string encode_endpoint(const ClusterEndpoint& e);
[[nodiscard]] Result<ClusterEndpoint> decode_endpoint(const std::string& value);
std::string encode_decision(const ClusterDecision& d);
[[nodiscard]] Result<ClusterDecision> decode_decision(const std::string& value);

class EtcdStore final : public ClusterStore {
 public:
  EtcdStore(boost::asio::io_context& io, EtcdOptions opts);
  ~EtcdStore() override;
  // Checks the URL and node name; start() then connects in the background and retries.
  [[nodiscard]] Status validate() const;
  void start(ClusterHandler handler) override;
  void stop() override;
  void publish(const ClusterEndpoint& e) override;
  void withdraw(const std::string& id) override;
  void decide(const ClusterDecision& d) override;
  ClusterStats stats() const override { return stats_; }

 private:
  struct Watch;
  using Lost = std::function<void(const std::string&)>;
  static void read_watch(const std::shared_ptr<Watch>& w, Lost lost);
  using Reply = std::function<void(Result<nlohmann::json>)>;
  void request(std::string path, nlohmann::json body, Reply done);  // queued: writes keep their order
  void pump();
  void connect();
  void on_range(const nlohmann::json& r);
  std::optional<ClusterEndpoint> decode_kv(const std::string& key, const nlohmann::json& kv);
  void start_watch(long long revision);
  void on_watch_message(const nlohmann::json& m);
  void keepalive();
  void fail(const std::string& what);
  void put(const ClusterEndpoint& e);
  std::string endpoints() const { return opts_.root + "endpoints/"; }
  std::string decisions() const { return opts_.root + "decisions/"; }
  std::string key(const std::string& id) const { return endpoints() + opts_.node + "/" + id; }
  void put_decision(const ClusterDecision& d);
  void on_decision_kv(const std::string& key, const nlohmann::json& kv);

  boost::asio::io_context& io_;
  EtcdOptions opts_;
  HttpUrl url_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::string tls_error_;
  ClusterHandler handler_;
  bool stopped_ = true;
  long long lease_ = 0;
  std::uint64_t generation_ = 0;  // bumps on every reconnect: stale callbacks see a newer one and stop
  std::map<std::string, ClusterEndpoint> local_;   // id -> this node's endpoint
  std::map<std::string, ClusterEndpoint> remote_;  // etcd key -> another node's endpoint
  std::vector<ClusterDecision> unsent_;            // decided while etcd was out of reach
  struct Pending {
    std::string path;
    nlohmann::json body;
    Reply done;
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
