// A real etcd (etcd-server) on loopback, started by the test on its own ports and data directory;
// skipped when etcd is not installed. Plain, TLS with client certificates, or TLS with RBAC set up by
// deploy/etcd-rbac.sh (nodes node-a to node-d and the operator ops).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_store.hpp"
#include "lab.hpp"

extern char** environ;

namespace topowall::testing {

struct EtcdLab : ::testing::Test {
  enum class Kind { plain, tls, rbac };
  explicit EtcdLab(Kind k = Kind::plain) : kind(k) {}

  void SetUp() override {
    if (sh("command -v etcd") != 0) GTEST_SKIP() << "etcd is not installed (package etcd-server; tools/install-deps.sh)";
    if (kind == Kind::rbac && sh("command -v etcdctl") != 0)
      GTEST_SKIP() << "etcdctl is not installed (package etcd-client; tools/install-deps.sh)";
    dir = "/tmp/topowall-etcd-" + std::to_string(getpid());
    sh("rm -rf " + dir);
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    if (kind == Kind::plain) return start_etcd("http", {}, "");
    // A CA, etcd's server certificate for 127.0.0.1, and a client certificate signed by the CA. The
    // client's has no common name: etcd's JSON gateway refuses one once RBAC is on.
    // EC keys: an RSA key takes seconds to make on a busy machine.
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string gen =
        "cd " + dir + " && openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 1 -subj /CN=twca"
        " && openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=etcd"
        " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext"
        " && openssl req" + ec + " -keyout client.key -out client.csr -subj /O=topowall"
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1"
        " && openssl req -x509" + ec + " -keyout other.key -out other.pem -days 1 -subj /CN=other";
    ASSERT_EQ(sh("(" + gen + ") >/dev/null 2>&1"), 0) << "openssl could not make the test certificates";
    std::vector<std::string> flags = {"--cert-file", dir + "/server.pem", "--key-file", dir + "/server.key",
                                      "--client-cert-auth", "--trusted-ca-file", dir + "/ca.pem"};
    // The lowest bcrypt cost etcd takes: users and logins are the tests' setup, not what they test.
    if (kind == Kind::rbac) flags.insert(flags.end(), {"--bcrypt-cost", "4"});
    start_etcd("https", flags,
               " --cacert " + dir + "/ca.pem --cert " + dir + "/client.pem --key " + dir + "/client.key");
    if (kind == Kind::rbac) {
      const auto out = sh_out(rbac_env() + " && " + TOPOWALL_SOURCE_DIR "/deploy/etcd-rbac.sh node node-a node-b node-c node-d" +
                              " && " + TOPOWALL_SOURCE_DIR "/deploy/etcd-rbac.sh operator ops && " +
                              TOPOWALL_SOURCE_DIR "/deploy/etcd-rbac.sh enable && echo SETUP-OK");
      ASSERT_NE(out.find("SETUP-OK"), std::string::npos) << "deploy/etcd-rbac.sh failed: " << out;
    }
  }
  // etcdctl's environment for this etcd, and where the script keeps the passwords.
  std::string rbac_env() const {
    return "export ETCDCTL_ENDPOINTS=" + url + " ETCDCTL_CACERT=" + dir + "/ca.pem ETCDCTL_CERT=" + dir +
           "/client.pem ETCDCTL_KEY=" + dir + "/client.key TOPOWALL_ETCD_SECRETS=" + dir + "/sec";
  }
  std::string password_file(const std::string& user) const { return dir + "/sec/" + user + ".password"; }
  TlsFiles client_tls() const { return {dir + "/ca.pem", dir + "/client.pem", dir + "/client.key"}; }

  void start_etcd(const std::string& scheme, std::vector<std::string> extra, const std::string& curl_tls) {
    const int port = 24100 + (getpid() % 400) * 2;
    url = scheme + "://127.0.0.1:" + std::to_string(port);
    curl = "curl -s" + curl_tls + " " + url;
    const std::string peer = "http://127.0.0.1:" + std::to_string(port + 1);
    std::vector<std::string> args = {"etcd", "--data-dir", dir + "/data", "--listen-client-urls", url, "--advertise-client-urls", url,
                                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                     "--initial-cluster", "default=" + peer};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, (dir + "/etcd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    ASSERT_EQ(posix_spawnp(&etcd, "etcd", &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 100; ++i) {
      if (sh("curl -sf" + curl_tls + " " + url + "/health >/dev/null") == 0) return;
      if (waitpid(etcd, nullptr, WNOHANG) == etcd) {
        etcd = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "etcd did not start: " << sh_out("tail -5 " + dir + "/etcd.log");
  }
  void TearDown() override {
    if (etcd > 0) {
      kill(etcd, SIGCONT);  // in case a test left it stopped
      kill(etcd, SIGTERM);
      waitpid(etcd, nullptr, 0);
    }
    if (!dir.empty()) sh("rm -rf " + dir);
  }
  cluster::EtcdOptions options(const std::string& node, int ttl_s = 2, TlsFiles tls_files = {}) const {
    cluster::EtcdOptions o;
    o.url = url;
    o.node = node;
    o.ttl = std::chrono::seconds(ttl_s);
    o.tls = tls_files;
    if (auto it = ranges_of.find(node); it != ranges_of.end()) o.ranges = it->second;
    return o;
  }
  std::unique_ptr<cluster::EtcdStore> store(boost::asio::io_context& io, const std::string& node, int ttl_s = 2,
                                            TlsFiles tls_files = {}) {
    return store(io, options(node, ttl_s, tls_files));
  }
  std::unique_ptr<cluster::EtcdStore> store(boost::asio::io_context& io, const cluster::EtcdOptions& o) {
    auto s = std::make_unique<cluster::EtcdStore>(io, o);
    EXPECT_TRUE(s->validate());
    return s;
  }
  // Runs the loops in turn until `pred` holds (false after `ms`).
  template <class Pred>
  bool run_until(Pred pred, std::vector<boost::asio::io_context*> ios, int ms = 8000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      for (auto* io : ios) {
        io->restart();
        io->run_for(std::chrono::milliseconds(10));
      }
    }
    return true;
  }
  static ClusterEndpoint ep(const std::string& id, const std::string& workload, const std::string& addr) {
    return ClusterEndpoint{"", id, workload, id, {*IpAddr::parse(addr)}};
  }

  Kind kind;
  // The ranges each test node announces (a node's claims count only inside its own).
  std::map<std::string, std::vector<Cidr>> ranges_of{{"node-a", {*Cidr::parse("10.1.0.0/16")}},
                                                     {"node-b", {*Cidr::parse("10.2.0.0/16")}},
                                                     {"node-c", {*Cidr::parse("10.3.0.0/16")}},
                                                     {"node-d", {*Cidr::parse("10.4.0.0/16")}}};
  pid_t etcd = 0;
  std::string url, dir, curl;
};

// What a node knows of other nodes, from its events: "node/id=workload@addr,addr".
struct Seen {
  void operator()(const ClusterEvent& e) {
    const auto k = e.endpoint.node + "/" + e.endpoint.id;
    if (e.kind == ClusterEvent::Kind::decision) {
      const auto& d = e.decision;
      decisions.push_back(d.src + ">" + d.dst + " " + std::string(to_string(d.proto)) + "/" + std::to_string(d.port) + " " +
                          d.state + " by " + d.node + ": " + d.comment);
      return;
    }
    if (e.kind == ClusterEvent::Kind::synced) ++synced;
    else if (e.kind == ClusterEvent::Kind::remove) eps.erase(k);
    else {
      std::string addrs;
      for (const auto& a : e.endpoint.addresses) addrs += (addrs.empty() ? "" : ",") + a.to_string();
      eps[k] = e.endpoint.workload + "@" + addrs;
    }
  }
  std::map<std::string, std::string> eps;
  std::vector<std::string> decisions;
  int synced = 0;
};

}  // namespace topowall::testing
