// The rules of each chain, built as libnftnl expressions. They are spelled
// the way nft itself encodes them, so `nft list ruleset` reads them back.
#pragma once

#include <memory>
#include <vector>

#include "common/handles.hpp"
#include "nft/elements.hpp"

namespace topowall::nft {

// `family`: NFPROTO_INET, or NFPROTO_BRIDGE for the guard's mirror table. An Error only when an
// allocation failed.
[[nodiscard]] Result<std::vector<NftRulePtr>> build_rules(const topology::RulesetConfig& cfg, const ChainSpec& chain, std::uint32_t family = 1);
// NF_INET_* hook of a base chain, or -1.
int hook_of(ChainKind kind);

}  // namespace topowall::nft
