#include "common/heap.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>

namespace topowall {

std::uint64_t rss_kib() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

HeapRelease HeapReleaser::check() {
  HeapRelease r;
  const auto info = mallinfo2();  // every arena; zeros under a sanitizer's allocator (then no trim)
  r.free_bytes = info.fordblks;
  const std::uint64_t in_use = info.uordblks + info.hblkhd, rss = rss_kib() * 1024;
  const std::uint64_t slack = rss > in_use ? rss - in_use : 0;
  // The floor follows the slack down (freed pages reused by later blocks), so a later peak is measured
  // from where the slack really is, not from a high-water mark it has left.
  slack_floor_ = std::min(slack_floor_, slack);
  if (info.fordblks < min_slack_ || slack < slack_floor_ + min_slack_) return r;
  r.rss_before_kib = rss / 1024;
  const auto t0 = std::chrono::steady_clock::now();
  (void)malloc_trim(0);  // its result only says whether anything was released
  r.ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  r.rss_after_kib = rss_kib();
  slack_floor_ = r.rss_after_kib * 1024 > in_use ? r.rss_after_kib * 1024 - in_use : 0;
  r.trimmed = true;
  return r;
}

}  // namespace topowall
