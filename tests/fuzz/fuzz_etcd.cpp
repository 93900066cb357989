// Values other nodes (or anyone with write access to etcd) put under the cluster's prefix: each is read
// as an endpoint and as a decision, as EtcdStore reads the ones under endpoints/ and decisions/. What is
// accepted then reaches an agent the way the store hands it over (an upsert, a decision), so the
// agent's use of it (addresses in the ruleset, an approval's expiry) is fuzzed too. The keys' base64
// must round-trip whatever bytes they hold.
#include <cstdio>
#include <string>

#include "agent_rig.hpp"
#include "cluster/etcd_store.hpp"
#include "fuzz_support.hpp"

using namespace topowall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string value(fuzz::as_text(data, size));
  if (cluster::base64_decode(cluster::base64_encode(value)) != value) {
    std::fprintf(stderr, "base64 did not round-trip\n");
    __builtin_trap();
  }
  (void)cluster::base64_decode(value);  // a key as etcd's gateway sends it
  auto e = cluster::decode_endpoint(value);
  auto d = cluster::decode_decision(value);
  if (!e && !d) return 0;
  fuzz::AgentRig rig;
  if (!rig.start_with_flows()) __builtin_trap();
  if (e) {
    e->node = "node-b";  // another node's: this node ignores its own
    rig.cluster->handler(ClusterEvent{ClusterEvent::Kind::upsert, *e});
  }
  if (d) rig.cluster->decision(*d);
  (void)rig.agent->handle({{"method", "rules.show"}}, control::Peer{0, 0, 0, true}, nullptr);
  if (e) rig.cluster->remove("node-b", e->id);
  return 0;
}
