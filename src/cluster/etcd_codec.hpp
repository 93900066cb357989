// What the nodes and operators write to etcd, and back. Every value read is another writer's: decoding
// never throws and refuses anything a local record could not hold.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "topowall/cluster.hpp"
#include "topowall/result.hpp"
#include "topowall/types.hpp"

namespace topowall::cluster {

// Keys are stored base64 in etcd's JSON API.
std::string base64_encode(const std::string& in);
std::string base64_decode(const std::string& in);
// The first key after every key starting with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(std::string prefix);
// etcd's gateway writes 64-bit numbers as strings: either form, 0 for anything else (never throws).
long long etcd_int(const nlohmann::json& v);
// What a node writes for one endpoint, and back; an Error (and why) if a value is unusable.
std::string encode_endpoint(const ClusterEndpoint& e);
[[nodiscard]] Result<ClusterEndpoint> decode_endpoint(const std::string& value);
std::string encode_decision(const ClusterDecision& d);
[[nodiscard]] Result<ClusterDecision> decode_decision(const std::string& value);

// The ranges a node announces for its workloads: <root>ranges/<node> = {"node", "ranges": [CIDR...]}.
struct NodeAnnouncement {
  std::string node;
  std::vector<Cidr> ranges;
};
std::string encode_ranges(const std::string& node, const std::vector<Cidr>& ranges);
[[nodiscard]] Result<NodeAnnouncement> decode_ranges(const std::string& value);

}  // namespace topowall::cluster
