// The writer's compact element store: the same answers as the std::map<Bytes, Bytes> it replaced, in
// a fraction of the memory (a million allow elements are most of the applied layout).
#include <gtest/gtest.h>
#include <malloc.h>

#include <map>
#include <random>

#include "nft/element_map.hpp"
#include "nft/elements.hpp"

using topowall::nft::Bytes;
using topowall::nft::ElementMap;

namespace {
Bytes random_bytes(std::mt19937& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng() % 4);  // few values: many shared prefixes
  return b;
}
}  // namespace

TEST(ElementMap, AnswersAsTheOrderedMapItReplaces) {
  std::mt19937 rng(7);
  std::map<Bytes, Bytes> ref;
  ElementMap m;
  for (int i = 0; i < 5000; ++i) {
    auto key = random_bytes(rng, rng() % 21);
    auto data = random_bytes(rng, rng() % 3 == 0 ? 40 : rng() % 5);  // some too long to sit inline
    if (rng() % 4 == 0) {
      EXPECT_EQ(m.erase(key), ref.erase(key) == 1);
      continue;
    }
    ref[key] = data;
    m.put(key, data);
  }
  ASSERT_EQ(m.size(), ref.size());
  using Elements = std::vector<std::pair<Bytes, Bytes>>;
  EXPECT_EQ(Elements(m.begin(), m.end()), Elements(ref.begin(), ref.end())) << "same elements, same order";
  for (const auto& [k, v] : ref) {
    EXPECT_TRUE(m.contains(k));
    EXPECT_EQ(m.get(k), v);
  }
  EXPECT_FALSE(m.get(Bytes(30, 9)));
}

TEST(ElementMap, PutReplacesDataAndCopiesKeepLongData) {
  ElementMap m;
  const Bytes key{0, 0, 0, 16};
  m.put(key, Bytes{1, 2, 3, 4});
  m.put(key, Bytes{5});
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.get(key), Bytes{5});
  const std::string verdict = "goto alert_drop_unclassified";
  m.put(Bytes(16, 'v'), Bytes(verdict.begin(), verdict.end()));
  ElementMap copy = m;
  ElementMap moved = std::move(m);
  EXPECT_EQ(copy, moved);
  EXPECT_EQ(copy.get(Bytes(16, 'v')), Bytes(verdict.begin(), verdict.end()));
  copy.put(key, Bytes{6});
  EXPECT_NE(copy, moved) << "data differs";
}

TEST(ElementMap, AnAllowElementTakesAFractionOfAMapNode) {
  // 16-byte keys without data, as the allow set holds them: a std::map<Bytes, Bytes> node took about
  // 128 bytes of heap (node, two vectors, the key's buffer).
  constexpr std::uint32_t kN = 100000;
  const auto before = mallinfo2().uordblks;
  auto* m = new ElementMap;
  for (std::uint32_t i = 0; i < kN; ++i) {
    Bytes key(16, 0);
    key[0] = static_cast<std::uint8_t>(i >> 16);
    key[4] = static_cast<std::uint8_t>(i >> 8);
    key[13] = static_cast<std::uint8_t>(i);
    m->put(key);
  }
  const double per = static_cast<double>(mallinfo2().uordblks - before) / kN;
  EXPECT_LE(per, 40.0) << "heap bytes per element";
  delete m;
}
