// RulesetWriter over libnftnl: one owned table; chains and sets appear only
// for new workload ids; everything else changes element by element, each
// change one atomic transaction.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "nft/elements.hpp"
#include "nft/nft_socket.hpp"
#include "topowall/ruleset_writer.hpp"

namespace topowall::nft {

// A string attribute of a dumped object: libnftnl returns null for one the message left out, and a
// std::string made from null is undefined behaviour (a crash), so a missing name reads as "".
inline std::string dumped_str(const char* s) { return s ? std::string(s) : std::string(); }

class NftWriter final : public RulesetWriter {
 public:
  [[nodiscard]] Status open() { return sock_.open(); }
  [[nodiscard]] Result<ApplyReport> apply(const topology::RulesetModel& model) override;
  [[nodiscard]] Result<ApplyReport> apply_patch(const topology::RulesetModel& model, const std::vector<IpAddr>& addrs,
                                  const std::vector<topology::AllowKey>& keys) override;
  [[nodiscard]] Status remove() override;
  [[nodiscard]] Status remove_table(const std::string& table);
  // Includes kernel counters, read with one small rule dump.
  WriterStats stats() const override;
  void invalidate() override { applied_.reset(); }
  [[nodiscard]] Result<bool> changed_since_commit() override;
  [[nodiscard]] Result<bool> intact(const topology::RulesetModel& model) override;
  void acknowledge() override { note_commit(); }

  // What the kernel holds now (reconcile, and tests). nullopt: no such table.
  [[nodiscard]] Result<std::optional<Layout>> read_kernel(const topology::RulesetModel& want);
  [[nodiscard]] Result<std::optional<std::string>> read_tag(const std::string& table);
  // Whether one element is in a set now (a single GET, no dump).
  [[nodiscard]] Result<bool> has_element(const std::string& table, const std::string& set, const Bytes& key);
  [[nodiscard]] Result<std::vector<AllowUse>> allow_use() override;

 private:
  [[nodiscard]] Result<ApplyReport> full_replace(const topology::RulesetModel& m, const Layout& want, bool exists);
  // `bridge`: rebuild the bridge-family guard from this layout in the same batch.
  [[nodiscard]] Status commit(const topology::RulesetModel& m, const LayoutDiff& d, std::optional<std::uint32_t> genid,
                const Layout* bridge = nullptr);
  [[nodiscard]] Result<bool> bridge_intact(const topology::RulesetConfig& cfg);
  [[nodiscard]] Status commit_incremental(const topology::RulesetModel& m, const LayoutDiff& d);

  void note_commit() {
    if (auto g = sock_.genid()) committed_gen_ = *g;
  }
  [[nodiscard]] Result<std::uint64_t> counter_packets(const std::string& table, const std::string& chain) const;

  mutable NftSocket sock_;  // mutable: stats() reads kernel counters
  std::optional<Layout> applied_;
  std::optional<topology::RulesetConfig> applied_cfg_;
  WriterStats stats_;
  std::optional<std::uint32_t> committed_gen_;  // the ruleset generation right after our last commit
};

// Fingerprint of the fixed structure; stored in the table's userdata.
std::string structure_tag(const topology::RulesetConfig& cfg);

}  // namespace topowall::nft
