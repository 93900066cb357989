// The heap release against the real allocator: a peak freed between live blocks stays in RSS until trimmed.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "common/heap.hpp"

namespace topowall {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

TEST(HeapRelease, APeakFreedBetweenLiveBlocksLeavesRssOnlyWhenTrimmed) {
  if (kSanitized) GTEST_SKIP() << "the sanitizer's allocator is not glibc's: nothing to trim";
  // 256 MiB in 4 kB blocks, touched; one block in 64 stays live, so the heap cannot shrink from its top.
  constexpr std::size_t kBlock = 4000, kBlocks = 64 * 1024;
  std::vector<std::unique_ptr<char[]>> blocks(kBlocks), kept;
  kept.reserve(kBlocks / 64);
  for (auto& b : blocks) {
    b.reset(new char[kBlock]);
    for (std::size_t i = 0; i < kBlock; i += 512) b[i] = 1;
  }
  for (std::size_t i = 0; i < kBlocks; i += 64) kept.push_back(std::move(blocks[i]));
  const auto peak = rss_kib();
  blocks.clear();
  const auto freed = rss_kib();
  ASSERT_GT(peak, 200u * 1024);
  EXPECT_GT(freed, peak - 64 * 1024) << "the allocator returned the freed blocks by itself: this test proves nothing";

  HeapReleaser releaser;
  const auto r = releaser.check();
  ASSERT_TRUE(r.trimmed) << "free " << (r.free_bytes >> 20) << " MiB";
  EXPECT_GE(r.free_bytes, std::uint64_t{200} << 20);
  EXPECT_LT(rss_kib(), freed - 150 * 1024) << "RSS before the trim " << freed << " kB, after " << rss_kib() << " kB";
  EXPECT_NEAR(static_cast<double>(r.rss_before_kib), static_cast<double>(freed), 1024);

  // The freed blocks stay free in the heap, their pages gone: the next check does not walk it again.
  const auto again = releaser.check();
  EXPECT_FALSE(again.trimmed);
  EXPECT_GE(again.free_bytes, std::uint64_t{200} << 20);

  // A second peak, freed the same way: trimmed again.
  blocks.resize(kBlocks);
  for (auto& b : blocks) {
    b.reset(new char[kBlock]);
    for (std::size_t i = 0; i < kBlock; i += 512) b[i] = 1;
  }
  const auto second_peak = rss_kib();
  blocks.clear();
  EXPECT_TRUE(releaser.check().trimmed);
  EXPECT_LT(rss_kib(), second_peak - 150 * 1024);
}

}  // namespace
}  // namespace topowall
