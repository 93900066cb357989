// Freed heap back to the system. glibc keeps the memory a transient peak freed (a cluster's full read,
// a graph import) mapped, between the blocks still live, so it stays in the process's RSS: after a
// 100k-endpoint sync that was 60 % of the agent's RSS (docs/BENCHMARKS.md, section 12). malloc_trim
// returns those free pages (it madvises them away); the blocks in use do not move.
#pragma once

#include <cstddef>
#include <cstdint>

namespace topowall {

struct HeapRelease {
  bool trimmed = false;
  std::uint64_t free_bytes = 0;  // free inside the heap before the trim
  std::uint64_t rss_before_kib = 0, rss_after_kib = 0;
  std::uint64_t ms = 0;  // the trim's duration
};

// Trims when the resident memory beyond what the heap has in use (the slack) grew by at least `min_slack`
// since the last trim, and at least that much is free in the heap. A trim walks the whole heap and leaves
// the free blocks free (only their pages go), so the free total alone would ask for a trim at every check.
class HeapReleaser {
 public:
  explicit HeapReleaser(std::size_t min_slack = std::size_t{32} << 20) : min_slack_(min_slack) {}
  [[nodiscard]] HeapRelease check();

 private:
  std::size_t min_slack_;
  std::uint64_t slack_floor_ = 0;  // the lowest slack since the last trim: code, stacks, what malloc keeps
};

// The process's resident set (from /proc/self/statm); 0 if unreadable.
[[nodiscard]] std::uint64_t rss_kib();

}  // namespace topowall
