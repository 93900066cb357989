// The flow journal's pure part: what one record holds, its byte encoding, and the per-minute buckets that
// turn a stream of flows into few records (a flood of one edge is one record a minute, not one a flow).
// The agent writes the bytes (src/agent/flow_journal.*); time is passed in.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "topowall/topology/graph.hpp"
#include "topowall/types.hpp"

namespace topowall::topology {

// What the kernel did with the flow when it was recorded: allowed flows are conntrack's (they passed),
// blocked ones the log's (dropped packets never reach conntrack).
enum class FlowVerdict : std::uint8_t { allowed = 1, blocked = 2 };
std::string_view to_string(FlowVerdict v);

struct JournalRecord {
  std::uint32_t minute = 0;  // the bucket: minutes since 1970-01-01 UTC
  EdgeKey key;
  FlowVerdict verdict = FlowVerdict::allowed;
  std::uint32_t count = 0;  // flows of that edge and verdict in that minute
  bool operator==(const JournalRecord&) const = default;
};

std::uint32_t minute_of(TimePoint t);
TimePoint minute_start(std::uint32_t minute);

// A journal file starts with this header: an 8-byte magic, then the format version (little-endian u32)
// and 4 reserved bytes. A reader refuses another version rather than misreading it.
inline constexpr std::string_view kJournalMagic = "TWFLOWJ\n";
inline constexpr std::uint32_t kJournalVersion = 1;
inline constexpr std::size_t kJournalHeaderSize = 16;
std::string journal_header();
bool is_journal_header(std::string_view bytes);

// One record: u16 payload length, u32 CRC-32 of the payload, then the payload (minute u32, proto u8,
// port u16, verdict u8, count u32, src and dst each as u8 length + bytes), little-endian. A torn write or a
// flipped bit fails the length or CRC check, so a reader stops there instead of reading garbage.
void encode_record(const JournalRecord& r, std::string& out);
std::size_t encoded_size(const JournalRecord& r);

// Decodes whole, valid records from the front of `bytes` (the part after the header), handing each to
// `each`; returns how many bytes they took. Anything after is a torn or corrupt tail.
std::size_t decode_records(std::string_view bytes, const std::function<void(const JournalRecord&)>& each);

std::uint32_t crc32(std::string_view bytes);

// Flows counted per (edge, verdict) for the current minute. A flow of a later minute closes the bucket;
// more than `max_keys` distinct keys in one minute (a scan) spill early, so memory stays bounded.
class FlowBuckets {
 public:
  explicit FlowBuckets(std::size_t max_keys = 65536) : max_keys_(max_keys == 0 ? 1 : max_keys) {}

  void add(const EdgeKey& key, FlowVerdict v, TimePoint now, std::uint32_t n = 1);
  // The records of buckets closed before `now`'s minute (all of them when `everything`), oldest first.
  [[nodiscard]] std::vector<JournalRecord> take(TimePoint now, bool everything = false);
  std::size_t open_keys() const { return open_.size(); }

 private:
  void close_open();

  std::size_t max_keys_;
  std::uint32_t minute_ = 0;
  std::map<std::pair<EdgeKey, FlowVerdict>, std::uint64_t> open_;
  std::vector<JournalRecord> closed_;
};

}  // namespace topowall::topology
