// The fixed rules of the owned table, built as libnftnl expressions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "topowall/topology/ruleset.hpp"

struct nftnl_rule;

namespace topowall::nft {

struct RuleDel {
  void operator()(nftnl_rule* r) const;
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleDel>;

struct ChainSpec {
  std::string name;
  int hook = -1;  // NF_INET_*; -1 for a regular chain
};

const std::vector<ChainSpec>& chain_specs();

// Every rule of the table, in order, tagged with its chain.
std::vector<std::pair<std::string, RulePtr>> build_rules(const topology::RulesetConfig& cfg);

}  // namespace topowall::nft
