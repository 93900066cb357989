#include "nft/element_map.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace topowall::nft {

static_assert(sizeof(PackedElement) == 24, "an element is one 24-byte record");

PackedElement::PackedElement(ByteView key, ByteView data) {
  // The kernel's keys are at most 64 bytes (NFT_DATA_VALUE_MAXLEN): a longer one is our bug.
  if (key.size() >= kHeap) throw std::length_error("nftables set key longer than 254 bytes");
  key_len_ = static_cast<std::uint8_t>(key.size());
  const std::size_t n = key.size() + data.size();
  std::uint8_t* dst = in_;
  if (n > kInline) {
    dst = new std::uint8_t[n];
    const auto n32 = static_cast<std::uint32_t>(n);
    std::memcpy(in_, &dst, sizeof dst);
    std::memcpy(in_ + sizeof dst, &n32, sizeof n32);
    len_ = kHeap;
  } else {
    len_ = static_cast<std::uint8_t>(n);
  }
  if (!key.empty()) std::memcpy(dst, key.data(), key.size());
  if (!data.empty()) std::memcpy(dst + key.size(), data.data(), data.size());
}

PackedElement::PackedElement(PackedElement&& o) noexcept : key_len_(o.key_len_), len_(o.len_) {
  std::memcpy(in_, o.in_, kInline);
  o.len_ = 0;  // the heap buffer, if any, is ours now
  o.key_len_ = 0;
}

PackedElement& PackedElement::operator=(const PackedElement& o) {
  if (this != &o) *this = PackedElement(o);
  return *this;
}

PackedElement& PackedElement::operator=(PackedElement&& o) noexcept {
  if (this == &o) return *this;
  release();
  std::memcpy(in_, o.in_, kInline);
  key_len_ = o.key_len_;
  len_ = o.len_;
  o.len_ = 0;
  o.key_len_ = 0;
  return *this;
}

std::size_t PackedElement::size() const {
  if (!heap()) return len_;
  std::uint32_t n = 0;
  std::memcpy(&n, in_ + sizeof(std::uint8_t*), sizeof n);
  return n;
}

const std::uint8_t* PackedElement::bytes() const {
  if (!heap()) return in_;
  std::uint8_t* p = nullptr;
  std::memcpy(&p, in_, sizeof p);
  return p;
}

void PackedElement::release() {
  if (heap()) delete[] bytes();
  len_ = 0;
}

void ElementMap::put(ByteView key, ByteView data) {
  auto it = tree_.find(key);
  if (it != tree_.end()) {
    auto d = it->data();
    if (std::equal(d.begin(), d.end(), data.begin(), data.end())) return;
    it = tree_.erase(it);
  }
  tree_.insert(it, PackedElement(key, data));
}

std::optional<Bytes> ElementMap::get(ByteView key) const {
  auto it = tree_.find(key);
  if (it == tree_.end()) return std::nullopt;
  return Bytes(it->data().begin(), it->data().end());
}

bool ElementMap::operator==(const ElementMap& o) const {
  auto same = [](ByteView a, ByteView b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); };
  return std::equal(tree_.begin(), tree_.end(), o.tree_.begin(), o.tree_.end(),
                    [&](const PackedElement& a, const PackedElement& b) {
                      return same(a.key(), b.key()) && same(a.data(), b.data());
                    });
}

}  // namespace topowall::nft
