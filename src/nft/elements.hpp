// Kernel byte layout of the model's set and map elements (pure). Keys mirror
// what the rules load into registers: addresses in network order, ids in host
// order, protocol in the first byte of a 32-bit register, ports network order.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "topowall/topology/ruleset.hpp"

namespace topowall::nft {

using Bytes = std::vector<std::uint8_t>;
using ElementMap = std::map<Bytes, Bytes>;  // key -> data ("" for plain sets)

struct SetSpec {
  std::string name;
  std::uint32_t key_len;
  std::uint32_t key_type;   // nft datatype id, for `nft list` display
  std::uint32_t data_len;   // 0 = plain set
  std::uint32_t flags;      // NFT_SET_*
};

const std::vector<SetSpec>& set_specs();

// Every set's elements for a model.
std::map<std::string, ElementMap> encode(const topology::RulesetModel& m);

Bytes id_bytes(std::uint32_t id);
Bytes allow_key(const topology::AllowKey& k);

struct ElementDiff {
  std::map<std::string, std::vector<std::pair<Bytes, Bytes>>> del, add;
  std::size_t size() const;
};
// What to delete and add to turn `have` into `want`; a changed value is a delete plus an add.
ElementDiff diff(const std::map<std::string, ElementMap>& have, const std::map<std::string, ElementMap>& want);

}  // namespace topowall::nft
