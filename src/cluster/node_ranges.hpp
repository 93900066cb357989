// The address ranges each node announced for its workloads (pod or container subnets). A node may claim
// only addresses inside its own ranges, and ranges may not overlap: where two nodes' ranges overlap, the
// one announced first (etcd's create_revision) stands and the later one is refused. Pure: no I/O.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "topowall/types.hpp"

namespace topowall::cluster {

struct RangeRefusal {
  std::string node;   // whose range is refused
  Cidr range;
  std::string owner;  // the node that announced an overlapping range first
  Cidr owner_range;
};

bool overlaps(const Cidr& a, const Cidr& b);

class NodeRanges {
 public:
  // A node's announcement, replacing its previous one; `order` is when it was first made (etcd's
  // create_revision of the key): the earlier wins an overlap.
  void set(const std::string& node, std::vector<Cidr> ranges, long long order);
  void erase(const std::string& node);
  void clear() { announced_.clear(); }
  // Decides again which ranges stand; returns the refusals not reported before (each is reported once
  // while it stays refused).
  std::vector<RangeRefusal> settle();
  bool allows(const std::string& node, const IpAddr& a) const;
  std::size_t refused() const { return reported_.size(); }

 private:
  struct Announced {
    std::vector<Cidr> ranges;
    long long order = 0;
  };
  std::map<std::string, Announced> announced_;
  std::map<std::string, std::vector<Cidr>> accepted_;
  std::set<std::pair<std::string, Cidr>> reported_;
};

}  // namespace topowall::cluster
