#include "topowall/topology/journal.hpp"

#include <array>
#include <chrono>
#include <limits>

namespace topowall::topology {

namespace {

constexpr std::size_t kFrame = 6;  // u16 length + u32 crc

void put(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get(std::string_view b, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

// The payload of one record, or false when it is not one (a name too long or invalid, a proto unknown).
bool decode_payload(std::string_view p, JournalRecord& r) {
  if (p.size() < 14) return false;
  r.minute = static_cast<std::uint32_t>(get(p, 0, 4));
  auto proto = proto_from_number(static_cast<int>(get(p, 4, 1)));
  if (!proto) return false;
  r.key.proto = *proto;
  r.key.port = static_cast<std::uint16_t>(get(p, 5, 2));
  const auto v = get(p, 7, 1);
  if (v != 1 && v != 2) return false;
  r.verdict = static_cast<FlowVerdict>(v);
  r.count = static_cast<std::uint32_t>(get(p, 8, 4));
  std::size_t at = 12;
  for (auto* name : {&r.key.src, &r.key.dst}) {
    if (at >= p.size()) return false;
    const auto n = get(p, at, 1);
    if (at + 1 + n > p.size()) return false;
    name->assign(p.substr(at + 1, n));
    at += 1 + n;
  }
  return at == p.size();
}

}  // namespace

std::string_view to_string(FlowVerdict v) { return v == FlowVerdict::blocked ? "blocked" : "allowed"; }

std::uint32_t minute_of(TimePoint t) {
  const auto m = std::chrono::duration_cast<std::chrono::minutes>(t.time_since_epoch()).count();
  if (m < 0) return 0;
  return m > std::numeric_limits<std::uint32_t>::max() ? std::numeric_limits<std::uint32_t>::max()
                                                       : static_cast<std::uint32_t>(m);
}

TimePoint minute_start(std::uint32_t minute) { return TimePoint{std::chrono::minutes(minute)}; }

std::string journal_header() {
  std::string h(kJournalMagic);
  put(h, kJournalVersion, 4);
  put(h, 0, 4);
  return h;
}

bool is_journal_header(std::string_view b) {
  return b.size() >= kJournalHeaderSize && b.substr(0, kJournalMagic.size()) == kJournalMagic &&
         get(b, kJournalMagic.size(), 4) == kJournalVersion;
}

std::uint32_t crc32(std::string_view bytes) {
  std::uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) c = kCrcTable[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

std::size_t encoded_size(const JournalRecord& r) {
  return kFrame + 14 + std::min<std::size_t>(r.key.src.size(), 255) + std::min<std::size_t>(r.key.dst.size(), 255);
}

void encode_record(const JournalRecord& r, std::string& out) {
  std::string p;
  p.reserve(encoded_size(r));
  put(p, r.minute, 4);
  put(p, static_cast<std::uint8_t>(r.key.proto), 1);
  put(p, r.key.port, 2);
  put(p, static_cast<std::uint8_t>(r.verdict), 1);
  put(p, r.count, 4);
  for (const auto* name : {&r.key.src, &r.key.dst}) {
    const auto n = std::min<std::size_t>(name->size(), 255);  // workload names are at most 63
    put(p, n, 1);
    p.append(*name, 0, n);
  }
  put(out, p.size(), 2);
  put(out, crc32(p), 4);
  out += p;
}

std::size_t decode_records(std::string_view bytes, const std::function<void(const JournalRecord&)>& each) {
  std::size_t at = 0;
  while (bytes.size() - at >= kFrame) {
    const auto len = get(bytes, at, 2);
    if (bytes.size() - at - kFrame < len) break;
    const auto payload = bytes.substr(at + kFrame, len);
    if (crc32(payload) != get(bytes, at + 2, 4)) break;
    JournalRecord r;
    if (!decode_payload(payload, r)) break;
    each(r);
    at += kFrame + len;
  }
  return at;
}

void FlowBuckets::add(const EdgeKey& key, FlowVerdict v, TimePoint now, std::uint32_t n) {
  const auto m = minute_of(now);
  if (m != minute_ && !open_.empty()) close_open();
  minute_ = m;
  if (open_.size() >= max_keys_ && !open_.count({key, v})) close_open();
  open_[{key, v}] += n;
}

void FlowBuckets::close_open() {
  for (auto& [kv, count] : open_) {
    for (auto left = count; left > 0;) {  // a count beyond u32 becomes several records
      const auto part = static_cast<std::uint32_t>(std::min<std::uint64_t>(left, std::numeric_limits<std::uint32_t>::max()));
      closed_.push_back(JournalRecord{minute_, kv.first, kv.second, part});
      left -= part;
    }
  }
  open_.clear();
}

std::vector<JournalRecord> FlowBuckets::take(TimePoint now, bool everything) {
  if (!open_.empty() && (everything || minute_of(now) != minute_)) close_open();
  std::vector<JournalRecord> out;
  out.swap(closed_);
  return out;
}

}  // namespace topowall::topology
