// Cluster mode at scale against a real etcd: what a small test cluster never shows.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <fstream>

#include "cluster/etcd_codec.hpp"
#include "etcd_lab.hpp"

using namespace topowall;
using namespace topowall::testing;

namespace {

// Writes `n` endpoints of node-b (inside its range), each with a name of `name_len` bytes, in
// transactions of 100 through etcd's JSON gateway.
void write_endpoints(const EtcdLab& lab, int n, std::size_t name_len) {
  const std::string pad(name_len, 'x');
  auto put = [](const std::string& k, const std::string& v) {
    return nlohmann::json{{"request_put", {{"key", cluster::base64_encode(k)}, {"value", cluster::base64_encode(v)}}}};
  };
  nlohmann::json ops = nlohmann::json::array();
  ops.push_back(put("/topowall/v1/ranges/node-b", cluster::encode_ranges("node-b", lab.ranges_of.at("node-b"))));
  const std::string file = lab.dir + "/txn.json";
  for (int i = 0; i < n; ++i) {
    const auto id = "ep-" + std::to_string(i);
    ClusterEndpoint e{"node-b", id, "app", pad + id,
                      {*IpAddr::parse("10.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1))}};
    ops.push_back(put("/topowall/v1/endpoints/node-b/" + id, cluster::encode_endpoint(e)));
    if (ops.size() < 100 && i + 1 < n) continue;
    std::ofstream(file) << nlohmann::json{{"success", ops}}.dump();
    ASSERT_NE(sh_out(lab.curl + "/v3/kv/txn -d @" + file).find("\"succeeded\":true"), std::string::npos);
    ops = nlohmann::json::array();
  }
}

}  // namespace

// A large cluster's full read is more than one HTTP answer may hold (8 MiB here: 10k endpoints with
// 1 kB names); the store reads it in pages and sees every endpoint.
TEST_F(EtcdLab, AClusterLargerThanOneAnswerIsReadInFull) {
  constexpr int kEndpoints = 10000;
  write_endpoints(*this, kEndpoints, 1000);
  ASSERT_GT(sh_out(curl + "/v3/kv/range -d '{\"key\":\"" + cluster::base64_encode("/topowall/v1/") + "\",\"range_end\":\"" +
                   cluster::base64_encode(cluster::prefix_end("/topowall/v1/")) + "\"}'")
                .size(),
            std::size_t{8} << 20)
      << "the test needs a read larger than one answer may be";
  boost::asio::io_context io;
  auto a = store(io, "node-a", 15);
  Seen seen;
  a->start(std::ref(seen));
  EXPECT_TRUE(run_until([&] { return seen.synced == 1 && seen.eps.size() == kEndpoints; }, {&io}, 30000))
      << "synced " << seen.synced << " times, " << seen.eps.size() << " endpoints; errors " << a->stats().errors;
  EXPECT_EQ(seen.eps["node-b/ep-9999"], "app@10.2.39.250");
  a->stop();
}
