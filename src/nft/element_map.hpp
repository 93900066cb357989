// The elements of one set as the writer remembers them (key -> data, both in kernel byte layout),
// stored compactly: at a million edges the applied layout is mostly the allow sets, so an element is
// one 24-byte record (key and data side by side, inline up to 22 bytes) in a B-tree, not two heap
// vectors in a red-black node (~128 bytes). Ordered by key bytes as std::map<Bytes, Bytes> was, so
// interval sets are still sent in the order the kernel expects.
#pragma once

#include <absl/container/btree_set.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace topowall::nft {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// One element: key bytes then data bytes in one buffer, inline when they fit (every set of ours but
// the one-element `gunclassified`), else on the heap.
class PackedElement {
 public:
  PackedElement(ByteView key, ByteView data);
  PackedElement(const PackedElement& o) : PackedElement(o.key(), o.data()) {}
  PackedElement(PackedElement&& o) noexcept;
  PackedElement& operator=(const PackedElement& o);
  PackedElement& operator=(PackedElement&& o) noexcept;
  ~PackedElement() { release(); }

  ByteView key() const { return {bytes(), key_len_}; }
  ByteView data() const { return {bytes() + key_len_, static_cast<std::size_t>(size() - key_len_)}; }

 private:
  static constexpr std::size_t kInline = 22;
  static constexpr std::uint8_t kHeap = 0xff;  // len_: in_ holds a pointer and a size (memcpy'd: no padding)
  bool heap() const { return len_ == kHeap; }
  std::size_t size() const;
  const std::uint8_t* bytes() const;
  void release();

  std::uint8_t in_[kInline];
  std::uint8_t key_len_ = 0;
  std::uint8_t len_ = 0;
};

// Orders elements, and looks them up, by key bytes alone (lexicographic, a prefix first).
struct KeyLess {
  using is_transparent = void;
  static ByteView view(const PackedElement& e) { return e.key(); }
  static ByteView view(ByteView v) { return v; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    auto x = view(a), y = view(b);
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
  }
};

class ElementMap {
  using Tree = absl::btree_set<PackedElement, KeyLess>;

 public:
  using value_type = std::pair<Bytes, Bytes>;
  // Yields (key, data) copies: callers hand them to batches and diffs, which own their bytes.
  class const_iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = ElementMap::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;
    using pointer = void;
    const_iterator() = default;
    explicit const_iterator(Tree::const_iterator it) : it_(it) {}
    value_type operator*() const { return {Bytes(it_->key().begin(), it_->key().end()), Bytes(it_->data().begin(), it_->data().end())}; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    const_iterator operator++(int) {
      auto old = *this;
      ++it_;
      return old;
    }
    bool operator==(const const_iterator& o) const { return it_ == o.it_; }
    ByteView key() const { return it_->key(); }
    ByteView data() const { return it_->data(); }

   private:
    Tree::const_iterator it_;
  };
  using iterator = const_iterator;

  // Insert, or replace the data of an element with this key.
  void put(ByteView key, ByteView data = {});
  bool erase(ByteView key) { return tree_.erase(key) > 0; }
  const_iterator find(ByteView key) const { return const_iterator(tree_.find(key)); }
  bool contains(ByteView key) const { return tree_.find(key) != tree_.end(); }
  std::size_t count(ByteView key) const { return contains(key) ? 1 : 0; }
  // The data of the element with this key; nullopt when there is none.
  std::optional<Bytes> get(ByteView key) const;
  std::size_t size() const { return tree_.size(); }
  bool empty() const { return tree_.empty(); }
  const_iterator begin() const { return const_iterator(tree_.begin()); }
  const_iterator end() const { return const_iterator(tree_.end()); }
  bool operator==(const ElementMap& o) const;

 private:
  Tree tree_;
};

}  // namespace topowall::nft
