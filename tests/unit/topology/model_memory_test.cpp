// What the compiled model holds per edge: at a million edges its allow set is most of the model.
#include <gtest/gtest.h>
#include <malloc.h>

#include "topowall/topology/ruleset.hpp"

using namespace topowall::topology;

TEST(ModelMemory, AnAllowedEdgeTakesAFewBytesNotATreeNode) {
  // A std::set<AllowKey> node took 48 bytes of heap for a 12-byte key.
  constexpr std::uint32_t kN = 100000;
  const auto before = mallinfo2().uordblks;
  auto* m = new RulesetModel;
  for (std::uint32_t i = 0; i < kN; ++i)
    m->allow.insert({16 + i % 1000, 16 + (i / 1000) % 1000, 6, static_cast<std::uint16_t>(1 + i % 7919)});
  ASSERT_EQ(m->allow.size(), kN);
  const double per = static_cast<double>(mallinfo2().uordblks - before) / kN;
  EXPECT_LE(per, 24.0) << "heap bytes per allowed edge";
  delete m;
}
