#include "agent/flow_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <spdlog/spdlog.h>

namespace topowall::agent {

namespace {

constexpr std::size_t kReadPart = 1 << 20;

Error sys_error(const std::string& what) { return Error{what + ": " + std::strerror(errno), errno}; }

// Reads up to `n` bytes at `off`; fewer only at the end of the file.
Result<std::string> read_at(int fd, std::uint64_t off, std::size_t n) {
  std::string buf(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("read journal");
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  buf.resize(got);
  return buf;
}

// Decodes a segment a part at a time; returns the offset just after its last valid record.
Result<std::uint64_t> scan(int fd, const std::function<void(const topology::JournalRecord&)>& each) {
  std::uint64_t off = topology::kJournalHeaderSize;
  std::string carry;
  for (;;) {
    auto part = read_at(fd, off + carry.size(), kReadPart);
    if (!part) return part.error();
    const bool last = part->size() < kReadPart;
    carry += *part;
    const auto used = topology::decode_records(carry, each);
    off += used;
    carry.erase(0, used);
    if (last || (used == 0 && carry.size() >= (1u << 17))) return off;  // a record is < 64 KiB: more is corrupt
  }
}

}  // namespace

FlowJournal::FlowJournal(std::string path, std::uint64_t max_bytes)
    : path_(std::move(path)), segment_max_(std::max(max_bytes, kMinBytes) / 2) {}

Result<std::uint64_t> FlowJournal::check_segment(const std::string& file) {
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd && errno == ENOENT) return std::uint64_t{0};
  if (!fd) return sys_error("open " + file);
  struct stat st{};
  if (::fstat(fd.get(), &st) < 0) return sys_error("stat " + file);
  auto head = read_at(fd.get(), 0, topology::kJournalHeaderSize);
  if (!head) return head.error();
  if (!topology::is_journal_header(*head)) {
    const auto aside = file + ".bad";
    spdlog::warn("flow journal {} is not a journal of this version: moved to {}; replay starts without it", file, aside);
    counters_.truncated_bytes += static_cast<std::uint64_t>(st.st_size);
    if (::rename(file.c_str(), aside.c_str()) < 0) return sys_error("move aside " + file);
    return std::uint64_t{0};
  }
  auto end = scan(fd.get(), [](const auto&) {});
  if (!end) return end.error();
  if (*end < static_cast<std::uint64_t>(st.st_size)) {
    const auto cut = static_cast<std::uint64_t>(st.st_size) - *end;
    spdlog::warn("flow journal {}: {} bytes of torn or corrupt tail cut (records after {} are lost)", file, cut, *end);
    counters_.truncated_bytes += cut;
    if (::ftruncate(fd.get(), static_cast<off_t>(*end)) < 0) return sys_error("truncate " + file);
  }
  return *end;
}

Status FlowJournal::open() {
  auto old = check_segment(path_ + ".old");
  if (!old) return old.error();
  old_bytes_ = *old;
  auto cur = check_segment(path_);
  if (!cur) return cur.error();
  cur_bytes_ = *cur;
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) return sys_error("open flow journal " + path_ + " (check the state directory is writable)");
  if (cur_bytes_ == 0) {
    if (::ftruncate(fd_.get(), 0) < 0) return sys_error("truncate " + path_);
    if (auto st = write_all(topology::journal_header()); !st) return st;
    cur_bytes_ = topology::kJournalHeaderSize;
  }
  return ok_status();
}

Status FlowJournal::write_all(const std::string& bytes) {
  for (std::size_t off = 0; off < bytes.size();) {
    ssize_t n = ::write(fd_.get(), bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("append to flow journal " + path_);
    off += static_cast<std::size_t>(n);
  }
  return ok_status();
}

// The current segment becomes the old one (the previous old one, the oldest half, goes) and a new one starts.
Status FlowJournal::rotate() {
  const auto old = path_ + ".old";
  if (::rename(path_.c_str(), old.c_str()) < 0) return sys_error("rotate flow journal " + path_);
  ++counters_.rotations;
  old_bytes_ = cur_bytes_;
  cur_bytes_ = 0;
  // A fresh segment appears whole (header and all) under its name: written aside, then renamed.
  const auto tmp = path_ + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return sys_error("create " + tmp);
  fd_ = std::move(fd);
  if (auto st = write_all(topology::journal_header()); !st) return st;
  if (::rename(tmp.c_str(), path_.c_str()) < 0) return sys_error("rename " + tmp);
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd_) return sys_error("open flow journal " + path_);
  cur_bytes_ = topology::kJournalHeaderSize;
  return ok_status();
}

Status FlowJournal::append(const std::vector<topology::JournalRecord>& records) {
  if (!fd_) return Error{"the flow journal is not open"};
  std::string batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return ok_status();
    auto st = write_all(batch);
    if (!st) {
      ++counters_.write_errors;
      return st;
    }
    cur_bytes_ += batch.size();
    batch.clear();
    return ok_status();
  };
  for (const auto& r : records) {
    if (cur_bytes_ + batch.size() + topology::encoded_size(r) > segment_max_) {
      if (auto st = flush(); !st) return st;
      if (auto st = rotate(); !st) {
        ++counters_.write_errors;
        return st;
      }
    }
    topology::encode_record(r, batch);
    ++counters_.records;
  }
  return flush();
}

Status FlowJournal::read(const std::function<void(const topology::JournalRecord&)>& each) const {
  for (const auto& file : {path_ + ".old", path_}) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd && errno == ENOENT) continue;
    if (!fd) return sys_error("open " + file);
    auto head = read_at(fd.get(), 0, topology::kJournalHeaderSize);
    if (!head) return head.error();
    if (!topology::is_journal_header(*head)) continue;  // moved aside at the next open
    if (auto end = scan(fd.get(), each); !end) return end.error();
  }
  return ok_status();
}

}  // namespace topowall::agent
