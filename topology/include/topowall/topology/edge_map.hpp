// The graph's edges, held compactly: names interned (two 4-byte ids an edge), the edge's counters and
// times packed into one 48-byte B-tree slot, and the rare comment and expiry kept beside it. A million
// edges take about 70 bytes each instead of about 210 as a std::map<EdgeKey, EdgeInfo>.
//
// It reads like that map: iteration in the same order (by names, then protocol, then port), yielding
// std::pair<EdgeKey, EdgeInfo> values rebuilt on the way out. Writes go through set/erase/upsert.
#pragma once

#include <absl/container/btree_set.h>

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "topowall/topology/names.hpp"
#include "topowall/types.hpp"

namespace topowall::topology {

enum class EdgeState : std::uint8_t { learned, approved, denied };
std::string_view to_string(EdgeState s);
std::optional<EdgeState> parse_edge_state(std::string_view t);

struct EdgeKey {
  std::string src;
  std::string dst;
  Proto proto = Proto::tcp;
  std::uint16_t port = 0;  // destination port, or icmp type for icmp/icmpv6
  auto operator<=>(const EdgeKey&) const = default;
  std::string to_string() const;  // "web -> api tcp/8080"
};

struct EdgeInfo {
  EdgeState state = EdgeState::learned;
  std::uint64_t count = 0;
  TimePoint first_seen{};
  TimePoint last_seen{};
  std::string comment;
  std::optional<TimePoint> expires;
  // Last time traffic crossed the edge (conntrack saw a flow of it, enforcing or not). Absent in graphs
  // written before it was tracked: topology/usage.hpp falls back to last_seen.
  std::optional<TimePoint> last_used;
  bool operator==(const EdgeInfo&) const = default;
};

namespace edge_map_detail {  // the packed form; see EdgeMap
struct Key {
  NameTable::Id src = 0, dst = 0;
  std::uint16_t port = 0;
  std::uint8_t proto = 0;
};
struct Slot {
  Key key;
  mutable std::uint8_t flags = 0;  // the state in the low bits, then kHasUsed, kHasExtra
  mutable std::uint64_t count = 0;
  mutable std::int64_t first_seen = 0, last_seen = 0, last_used = 0;  // TimePoint ticks
};
struct Less {
  const NameTable* names = nullptr;
  bool operator()(const Key& a, const Key& b) const;
  bool operator()(const Slot& a, const Slot& b) const { return (*this)(a.key, b.key); }
};
struct IdLess {  // any fixed order: the extras are found by key, never walked in order
  bool operator()(const Key& a, const Key& b) const {
    return std::tie(a.src, a.dst, a.proto, a.port) < std::tie(b.src, b.dst, b.proto, b.port);
  }
};
struct Extra {
  std::string comment;
  std::optional<TimePoint> expires;
};
}  // namespace edge_map_detail

class EdgeMap {
  using Key = edge_map_detail::Key;
  using Slot = edge_map_detail::Slot;
  using Less = edge_map_detail::Less;
  using IdLess = edge_map_detail::IdLess;
  using Extra = edge_map_detail::Extra;
  using Tree = absl::btree_set<Slot, Less>;

 public:
  using value_type = std::pair<EdgeKey, EdgeInfo>;

  // Yields each edge as a value rebuilt from its slot: `*it` is a copy (so `const auto& [k, e] = *begin()`
  // stays valid); `it->` reads a copy kept in the iterator, valid while the iterator stays where it is.
  class const_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = EdgeMap::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;
    using pointer = const value_type*;

    const_iterator() = default;
    value_type operator*() const { return load(); }
    pointer operator->() const { return &load(); }
    const_iterator& operator++() { return ++it_, loaded_ = false, *this; }
    const_iterator operator++(int) { auto t = *this; ++*this; return t; }
    const_iterator& operator--() { return --it_, loaded_ = false, *this; }
    const_iterator operator--(int) { auto t = *this; --*this; return t; }
    bool operator==(const const_iterator& o) const { return it_ == o.it_; }

   private:
    friend class EdgeMap;
    const_iterator(const EdgeMap* m, Tree::const_iterator it) : map_(m), it_(it) {}
    const value_type& load() const;
    const EdgeMap* map_ = nullptr;
    Tree::const_iterator it_;
    mutable value_type cache_;
    mutable bool loaded_ = false;
  };
  using iterator = const_iterator;

  EdgeMap();
  EdgeMap(const EdgeMap& o);
  EdgeMap& operator=(const EdgeMap& o);
  EdgeMap(EdgeMap&& o);
  EdgeMap& operator=(EdgeMap&& o);
  ~EdgeMap();

  std::size_t size() const { return tree_.size(); }
  bool empty() const { return tree_.empty(); }
  const_iterator begin() const { return {this, tree_.begin()}; }
  const_iterator end() const { return {this, tree_.end()}; }
  const_iterator find(const EdgeKey& k) const;
  const_iterator upper_bound(const EdgeKey& k) const;
  std::size_t count(const EdgeKey& k) const { return find(k) != end(); }
  bool contains(const EdgeKey& k) const { return count(k) > 0; }
  std::optional<EdgeInfo> get(const EdgeKey& k) const;

  // Insert or replace; true when the edge is new.
  bool set(const EdgeKey& k, const EdgeInfo& info);
  // Change an edge in place, change(EdgeInfo&, bool inserted); absent, a default one is inserted first.
  // True when it was inserted.
  template <class F>
  bool upsert(const EdgeKey& k, F&& change) {
    auto [slot, inserted] = slot_for(k);
    EdgeInfo e = unpack(*slot);
    change(e, inserted);
    pack(*slot, e);
    return inserted;
  }
  bool erase(const EdgeKey& k);
  const_iterator erase(const_iterator it);
  void clear();

  // Every edge in order, f(const EdgeKey&, const EdgeInfo&), without a copy of the names per edge: for
  // the loops over a million edges (the compiler, the state file).
  template <class F>
  void for_each(F&& f) const {
    for (auto it = begin(); it != end(); ++it) {
      const auto& [k, e] = *it.operator->();
      f(k, e);
    }
  }

  bool operator==(const EdgeMap& o) const;
  const NameTable& names() const { return *names_; }

 private:
  std::pair<const Slot*, bool> slot_for(const EdgeKey& k);
  std::optional<Key> key_of(const EdgeKey& k) const;  // nullopt: a name no edge holds
  EdgeInfo unpack(const Slot& s) const;
  void pack(const Slot& s, const EdgeInfo& e);
  void drop(const Slot& s);  // release the slot's names and extra, before it is erased
  void reset();

  std::unique_ptr<NameTable> names_;  // on the heap: the tree's order reads it, and a move keeps it
  Tree tree_;
  std::map<Key, Extra, IdLess> extra_;  // the few edges with a comment or an expiry
};

}  // namespace topowall::topology
