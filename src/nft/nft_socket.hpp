// nfnetlink transport for nf_tables: batches as one transaction, every ACK
// drained and matched to its sequence number, extended ACK messages surfaced.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "topowall/result.hpp"

struct mnl_socket;
struct nftnl_batch;

namespace topowall::nft {

class Batch {
 public:
  // With `genid`, the kernel refuses the transaction (ERESTART) if the
  // ruleset changed since that generation was read.
  Batch(std::uint32_t& seq, std::optional<std::uint32_t> genid = std::nullopt);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Start a message; fill its payload, then call done().
  nlmsghdr* msg(std::uint16_t type, std::uint16_t family, std::uint16_t flags);
  void done();
  void finish();
  std::size_t messages() const { return count_; }
  nftnl_batch* raw() const { return b_; }
  std::uint32_t first_seq() const { return first_; }
  std::uint32_t last_seq() const { return last_; }

 private:
  nftnl_batch* b_;
  std::uint32_t& seq_;
  std::uint32_t first_ = 0, last_ = 0;
  std::size_t count_ = 0;
};

class NftSocket {
 public:
  NftSocket();
  ~NftSocket();
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;

  Status open();
  Status commit(Batch& b);
  Result<std::uint32_t> genid();
  // One request; `cb` sees every reply message. ENOENT comes back as an Error with code ENOENT.
  Status request(std::uint16_t type, std::uint16_t family, std::uint16_t flags,
                 const std::function<void(nlmsghdr*)>& fill, const std::function<void(const nlmsghdr*)>& cb);
  std::uint32_t& seq() { return seq_; }

 private:
  mnl_socket* sock_ = nullptr;
  std::uint32_t seq_;
  std::uint32_t portid_ = 0;
};

}  // namespace topowall::nft
