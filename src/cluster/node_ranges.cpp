#include "cluster/node_ranges.hpp"

#include <algorithm>

namespace topowall::cluster {

bool overlaps(const Cidr& a, const Cidr& b) {
  // Prefixes nest: the shorter one holds the longer one exactly when it holds any of its addresses.
  return a.prefix <= b.prefix ? a.contains(b.addr) : b.contains(a.addr);
}

void NodeRanges::set(const std::string& node, std::vector<Cidr> ranges, long long order) {
  announced_[node] = {std::move(ranges), order};
}

void NodeRanges::erase(const std::string& node) { announced_.erase(node); }

std::vector<RangeRefusal> NodeRanges::settle() {
  std::vector<std::pair<long long, std::string>> order;
  for (const auto& [node, a] : announced_) order.emplace_back(a.order, node);
  std::sort(order.begin(), order.end());  // first announced first; a tie (never in etcd) by name
  accepted_.clear();
  std::vector<RangeRefusal> fresh;
  std::set<std::pair<std::string, Cidr>> still;
  for (const auto& [when, node] : order) {
    auto& mine = accepted_[node];
    for (const auto& r : announced_.at(node).ranges) {
      const RangeRefusal* clash = nullptr;
      RangeRefusal found;
      for (const auto& [other, theirs] : accepted_) {
        if (other == node) continue;
        for (const auto& t : theirs)
          if (overlaps(r, t)) {
            found = {node, r, other, t};
            clash = &found;
            break;
          }
        if (clash) break;
      }
      if (!clash) {
        mine.push_back(r);
        continue;
      }
      still.insert({node, r});
      if (!reported_.count({node, r})) fresh.push_back(found);
    }
  }
  reported_ = std::move(still);
  return fresh;
}

bool NodeRanges::allows(const std::string& node, const IpAddr& a) const {
  auto it = accepted_.find(node);
  if (it == accepted_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const Cidr& c) { return c.contains(a); });
}

}  // namespace topowall::cluster
