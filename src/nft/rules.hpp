// The rules of each chain, built as libnftnl expressions. They are spelled
// the way nft itself encodes them, so `nft list ruleset` reads them back.
#pragma once

#include <memory>
#include <vector>

#include "nft/elements.hpp"

struct nftnl_rule;

namespace topowall::nft {

struct RuleDel {
  void operator()(nftnl_rule* r) const;
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleDel>;

// `family`: NFPROTO_INET, or NFPROTO_BRIDGE for the guard's mirror table.
std::vector<RulePtr> build_rules(const topology::RulesetConfig& cfg, const ChainSpec& chain, std::uint32_t family = 1);
// NF_INET_* hook of a base chain, or -1.
int hook_of(ChainKind kind);

}  // namespace topowall::nft
