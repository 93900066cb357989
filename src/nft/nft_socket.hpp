// nfnetlink transport for nf_tables: batches as one transaction, every ACK
// drained and matched to its sequence number, extended ACK messages surfaced.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/handles.hpp"
#include "topowall/result.hpp"

namespace topowall::nft {

// A batch that could not be built (an allocation failed) keeps its first error; commit returns it and
// sends nothing, so a half-built transaction never reaches the kernel.
class Batch {
 public:
  // With `genid`, the kernel refuses the transaction (ERESTART) if the
  // ruleset changed since that generation was read.
  Batch(std::uint32_t& seq, std::optional<std::uint32_t> genid = std::nullopt);
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Append one message; `fill(nlmsghdr*)` writes its payload. Nothing once the batch has failed.
  template <typename Fill>
  void add(std::uint16_t type, std::uint16_t family, std::uint16_t flags, Fill&& fill) {
    if (error_) return;
    fill(msg(type, family, flags));
    done();
  }
  void fail(Error e) {
    if (!error_) error_ = std::move(e);
  }
  const std::optional<Error>& error() const { return error_; }
  void finish();
  std::size_t messages() const { return count_; }
  nftnl_batch* raw() const { return b_.get(); }
  std::uint32_t first_seq() const { return first_; }
  std::uint32_t last_seq() const { return last_; }

 private:
  nlmsghdr* msg(std::uint16_t type, std::uint16_t family, std::uint16_t flags);
  void done();

  NftBatchPtr b_;
  std::optional<Error> error_;
  std::uint32_t& seq_;
  std::uint32_t first_ = 0, last_ = 0;
  std::size_t count_ = 0;
};

class NftSocket {
 public:
  NftSocket();
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;

  [[nodiscard]] Status open();
  [[nodiscard]] Status commit(Batch& b);
  [[nodiscard]] Result<std::uint32_t> genid();
  // One request; `cb` sees every reply message. ENOENT comes back as an Error with code ENOENT.
  [[nodiscard]] Status request(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                 const std::function<void(nlmsghdr*)>& fill, const std::function<void(const nlmsghdr*)>& cb);
  std::uint32_t& seq() { return seq_; }

 private:
  MnlSocketPtr sock_;
  std::uint32_t seq_;
  std::uint32_t portid_ = 0;
};

}  // namespace topowall::nft
