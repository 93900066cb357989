#include "topowall/topology/edge_map.hpp"

namespace topowall::topology {

namespace {
constexpr std::uint8_t kStateMask = 0x3, kHasUsed = 0x4, kHasExtra = 0x8;

std::int64_t ticks(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint at_ticks(std::int64_t v) { return TimePoint{TimePoint::duration{v}}; }
}  // namespace

bool edge_map_detail::Less::operator()(const Key& a, const Key& b) const {
  // The order of std::map<EdgeKey, ...>: names, then protocol, then port. Equal ids need no string.
  if (a.src != b.src) return names->name(a.src) < names->name(b.src);
  if (a.dst != b.dst) return names->name(a.dst) < names->name(b.dst);
  if (a.proto != b.proto) return a.proto < b.proto;
  return a.port < b.port;
}

EdgeMap::EdgeMap() : names_(std::make_unique<NameTable>()), tree_(Less{names_.get()}) {}

EdgeMap::EdgeMap(const EdgeMap& o)
    : names_(std::make_unique<NameTable>(*o.names_)),  // the same ids: the slots copy as they are
      tree_(o.tree_.begin(), o.tree_.end(), Less{names_.get()}),
      extra_(o.extra_) {}

EdgeMap& EdgeMap::operator=(const EdgeMap& o) {
  if (this != &o) {
    EdgeMap copy(o);
    *this = std::move(copy);
  }
  return *this;
}

EdgeMap::EdgeMap(EdgeMap&& o)
    : names_(std::move(o.names_)), tree_(std::move(o.tree_)), extra_(std::move(o.extra_)) {
  o.reset();
}

EdgeMap& EdgeMap::operator=(EdgeMap&& o) {
  if (this != &o) {
    names_ = std::move(o.names_);
    tree_ = std::move(o.tree_);
    extra_ = std::move(o.extra_);
    o.reset();
  }
  return *this;
}

EdgeMap::~EdgeMap() = default;

// A moved-from or cleared map is empty and usable, with a table of its own.
void EdgeMap::reset() {
  extra_.clear();
  tree_ = Tree(Less{nullptr});  // emptied before the table it orders by goes
  names_ = std::make_unique<NameTable>();
  tree_ = Tree(Less{names_.get()});
}

void EdgeMap::clear() { reset(); }

std::optional<EdgeMap::Key> EdgeMap::key_of(const EdgeKey& k) const {
  const auto src = names_->lookup(k.src), dst = names_->lookup(k.dst);
  if (src == NameTable::kNone || dst == NameTable::kNone) return std::nullopt;
  return Key{src, dst, k.port, static_cast<std::uint8_t>(k.proto)};
}

EdgeMap::const_iterator EdgeMap::find(const EdgeKey& k) const {
  const auto key = key_of(k);
  return key ? const_iterator{this, tree_.find(Slot{*key})} : end();
}

EdgeMap::const_iterator EdgeMap::upper_bound(const EdgeKey& k) const {
  if (const auto key = key_of(k)) return {this, tree_.upper_bound(Slot{*key})};
  // A key whose names are gone: the first edge after it by the same order, found by walking names.
  auto it = tree_.begin();
  while (it != tree_.end()) {
    const EdgeKey cur{names_->name(it->key.src), names_->name(it->key.dst), static_cast<Proto>(it->key.proto),
                      it->key.port};
    if (k < cur) break;
    ++it;
  }
  return {this, it};
}

std::optional<EdgeInfo> EdgeMap::get(const EdgeKey& k) const {
  const auto key = key_of(k);
  if (!key) return std::nullopt;
  auto it = tree_.find(Slot{*key});
  if (it == tree_.end()) return std::nullopt;
  return unpack(*it);
}

std::pair<const EdgeMap::Slot*, bool> EdgeMap::slot_for(const EdgeKey& k) {
  if (const auto key = key_of(k))
    if (auto it = tree_.find(Slot{*key}); it != tree_.end()) return {&*it, false};
  Slot s;
  s.key = Key{names_->acquire(k.src), names_->acquire(k.dst), k.port, static_cast<std::uint8_t>(k.proto)};
  auto [it, inserted] = tree_.insert(s);
  return {&*it, inserted};
}

bool EdgeMap::set(const EdgeKey& k, const EdgeInfo& info) {
  auto [slot, inserted] = slot_for(k);
  pack(*slot, info);
  return inserted;
}

void EdgeMap::drop(const Slot& s) {
  if (s.flags & kHasExtra) extra_.erase(s.key);
  names_->release(s.key.src);
  names_->release(s.key.dst);
}

bool EdgeMap::erase(const EdgeKey& k) {
  const auto key = key_of(k);
  if (!key) return false;
  auto it = tree_.find(Slot{*key});
  if (it == tree_.end()) return false;
  const Slot s = *it;
  tree_.erase(it);  // first: the order reads the names the slot holds
  drop(s);
  return true;
}

EdgeMap::const_iterator EdgeMap::erase(const_iterator it) {
  const Slot s = *it.it_;
  auto next = tree_.erase(it.it_);
  drop(s);
  return {this, next};
}

EdgeInfo EdgeMap::unpack(const Slot& s) const {
  EdgeInfo e;
  e.state = static_cast<EdgeState>(s.flags & kStateMask);
  e.count = s.count;
  e.first_seen = at_ticks(s.first_seen);
  e.last_seen = at_ticks(s.last_seen);
  if (s.flags & kHasUsed) e.last_used = at_ticks(s.last_used);
  if (s.flags & kHasExtra) {
    const auto& x = extra_.at(s.key);
    e.comment = x.comment;
    e.expires = x.expires;
  }
  return e;
}

void EdgeMap::pack(const Slot& s, const EdgeInfo& e) {
  s.flags = static_cast<std::uint8_t>(static_cast<std::uint8_t>(e.state) & kStateMask);
  s.count = e.count;
  s.first_seen = ticks(e.first_seen);
  s.last_seen = ticks(e.last_seen);
  s.last_used = e.last_used ? ticks(*e.last_used) : 0;
  if (e.last_used) s.flags |= kHasUsed;
  if (!e.comment.empty() || e.expires) {
    s.flags |= kHasExtra;
    extra_[s.key] = Extra{e.comment, e.expires};
  } else {
    extra_.erase(s.key);
  }
}

const EdgeMap::value_type& EdgeMap::const_iterator::load() const {
  if (loaded_) return cache_;
  const Slot& s = *it_;
  // Assigned, not rebuilt: the cached strings keep their buffers from one edge to the next.
  cache_.first.src.assign(map_->names_->name(s.key.src));
  cache_.first.dst.assign(map_->names_->name(s.key.dst));
  cache_.first.proto = static_cast<Proto>(s.key.proto);
  cache_.first.port = s.key.port;
  cache_.second = map_->unpack(s);
  loaded_ = true;
  return cache_;
}

bool EdgeMap::operator==(const EdgeMap& o) const {
  if (size() != o.size()) return false;
  for (auto a = begin(), b = o.begin(); a != end(); ++a, ++b)
    if (*a.operator->() != *b.operator->()) return false;
  return true;
}

}  // namespace topowall::topology
