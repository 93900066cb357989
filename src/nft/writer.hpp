// RulesetWriter over libnftnl: one owned table, fixed rules, sets and maps
// changed element by element in atomic transactions.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "nft/elements.hpp"
#include "nft/nft_socket.hpp"
#include "topowall/ruleset_writer.hpp"

namespace topowall::nft {

class NftWriter final : public RulesetWriter {
 public:
  NftWriter() = default;
  Status open() { return sock_.open(); }
  Result<ApplyReport> apply(const topology::RulesetModel& model) override;
  Status remove() override;
  WriterStats stats() const override { return stats_; }

  // What the kernel holds now (for tests and reconcile).
  Result<std::optional<std::string>> read_tag(const std::string& table);
  Result<std::map<std::string, ElementMap>> read_elements(const std::string& table);
  Result<std::map<std::string, std::size_t>> read_rule_counts(const std::string& table);

 private:
  Result<ApplyReport> full_replace(const topology::RulesetModel& m, bool exists);
  Status commit_diff(const std::string& table, const ElementDiff& d, std::optional<std::uint32_t> genid);
  Result<bool> structure_intact(const topology::RulesetModel& m);

  NftSocket sock_;
  std::optional<std::map<std::string, ElementMap>> applied_;
  std::optional<topology::RulesetConfig> applied_cfg_;
  WriterStats stats_;
};

// Fingerprint of everything but the elements; stored in the table's userdata.
std::string structure_tag(const topology::RulesetConfig& cfg);

}  // namespace topowall::nft
