// What the fuzz targets share: the input as the agent would hold it, and the netlink walk its listeners do.
#pragma once

#include <libmnl/libmnl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/netlink.hpp"

namespace topowall::fuzz {

// A copy of the input that ends exactly where an inaccessible page begins. libmnl and libnl are not
// built with AddressSanitizer, so a read past a message's end inside them goes unseen in an ordinary
// heap buffer; here it faults. The length is cut to a multiple of 4, as every netlink datagram is,
// so that the messages start aligned.
class GuardedBytes {
 public:
  GuardedBytes(const std::uint8_t* data, std::size_t size) : size_(size & ~std::size_t{3}) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t pages = (size_ + page - 1) / page;
    total_ = (pages + 1) * page;
    void* m = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) __builtin_trap();
    base_ = static_cast<char*>(m);
    char* guard = base_ + pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) __builtin_trap();
    data_ = guard - size_;
    if (size_) std::memcpy(data_, data, size_);
  }
  ~GuardedBytes() { munmap(base_, total_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
  std::size_t total_ = 0;
  char* base_ = nullptr;
  char* data_ = nullptr;
};

// Every message of one datagram, walked as the listeners walk what recv returned.
template <typename Fn>
void for_each_message(const GuardedBytes& dgram, Fn fn) {
  int len = static_cast<int>(dgram.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(dgram.data()); nlmsg_fits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
    fn(nlh);
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace topowall::fuzz
