// The flow journal on disk: per-minute flow records (topology/journal.hpp) appended to a file under the
// state directory, so `topowall replay` can judge a proposed graph against what really ran.
//
// Bounded: two segments, `<path>` (appended to) and `<path>.old`; when the current one would pass half of
// `max_bytes` it replaces the old one and a fresh one starts, so both together stay within `max_bytes` and
// the oldest half is what goes. Append-safe: records are framed with a length and a CRC, written with
// O_APPEND; a torn or corrupt tail (a crash mid-write, a bad disk block) is cut at open, never fatal, and
// counted. A segment whose header is not ours is moved aside to `<name>.bad`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "topowall/result.hpp"
#include "topowall/topology/journal.hpp"

namespace topowall::agent {

struct JournalCounters {
  std::uint64_t records = 0;          // records written
  std::uint64_t write_errors = 0;     // appends that failed (the records are lost)
  std::uint64_t truncated_bytes = 0;  // torn or corrupt tail bytes cut at open
  std::uint64_t rotations = 0;        // the old half dropped to stay within the size limit
};

class FlowJournal {
 public:
  static constexpr std::uint64_t kMinBytes = 64 << 10;

  FlowJournal(std::string path, std::uint64_t max_bytes);
  // Opens (or creates) the segments, cutting torn tails. An error only when the directory is unusable.
  [[nodiscard]] Status open();
  [[nodiscard]] Status append(const std::vector<topology::JournalRecord>& records);
  // Every record, oldest first, read a part at a time (the journal is never held whole in memory).
  [[nodiscard]] Status read(const std::function<void(const topology::JournalRecord&)>& each) const;
  std::uint64_t bytes() const { return old_bytes_ + cur_bytes_; }
  const JournalCounters& counters() const { return counters_; }
  const std::string& path() const { return path_; }

 private:
  [[nodiscard]] Status rotate();
  [[nodiscard]] Status write_all(const std::string& bytes);
  [[nodiscard]] Result<std::uint64_t> check_segment(const std::string& file);  // its valid size, 0 when absent

  std::string path_;
  std::uint64_t segment_max_;
  UniqueFd fd_;
  std::uint64_t cur_bytes_ = 0, old_bytes_ = 0;
  JournalCounters counters_;
};

}  // namespace topowall::agent
