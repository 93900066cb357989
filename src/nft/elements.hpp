// The model laid out as kernel objects (pure): every set with its elements in
// kernel byte layout, and every chain. Keys mirror what the rules load into
// registers: addresses in network order, marks in host order, protocol in the
// first byte of a 32-bit register, ports in network order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "nft/element_map.hpp"
#include "topowall/topology/ruleset.hpp"

namespace topowall::nft {

// ElementMap (nft/element_map.hpp): key -> data. Interval sets carry one trailing key byte: 0 for an
// interval end element, 1 for a start. Verdict map data is the text "jump <chain>" or "goto <chain>";
// mark map data is the 4-byte value in host order.

enum class DataKind { none, verdict, mark };

struct SetSpec {
  std::string name;
  std::uint32_t key_len = 0;
  std::uint32_t key_type = 0;  // nft datatype id, for `nft list`
  DataKind data = DataKind::none;
  bool interval = false;
  bool counters = false;  // every element counts its matches (the allow sets: edge use, see DESIGN.md)
};

enum class ChainKind { check, invalid, judge, taken, allowed, alert_drop, alert_pass, prerouting, output, src, guard };

struct ChainSpec {
  std::string name;
  ChainKind kind;
  std::uint32_t id = 0;  // src_ chains
  std::string reason;    // alert chains: "" (no edge) or "ctmark" (judged without dispatch)
};

struct Layout {
  std::map<std::string, SetSpec> sets;
  std::map<std::string, ElementMap> elements;
  std::vector<ChainSpec> chains;      // in creation order
  std::vector<std::string> set_order;  // creation order (as `nft list` shows them)
  std::set<std::string> damaged;       // chains edited by hand: flush and refill
  std::set<std::uint32_t> id_objects;  // ids whose chains and sets exist
};

Layout layout(const topology::RulesetModel& m);

// The guard's sets, which the bridge-family table mirrors element for element (see DESIGN.md, "The guard").
bool guard_set(const std::string& name);

struct LayoutDiff {
  std::vector<SetSpec> add_sets;
  std::vector<std::string> del_sets;
  std::vector<ChainSpec> add_chains;
  std::vector<std::string> del_chains;
  std::vector<std::string> flush_chains;  // refilled: their rules are re-added
  std::map<std::string, std::vector<std::pair<Bytes, Bytes>>> del, add;  // elements
  std::size_t element_changes() const;
  std::size_t changes() const;  // elements plus objects
  bool empty() const;
};
// What turns `have` into `want`; a changed value is a delete plus an add.
LayoutDiff diff(const Layout& have, const Layout& want);

// The same difference as diff(have, layout(want)), computed only for the given
// addresses and allow keys (and the objects of ids `have` lacks): O(changes).
LayoutDiff patch_diff(const Layout& have, const topology::RulesetModel& want, const std::vector<IpAddr>& addrs,
                      const std::vector<topology::AllowKey>& keys);
// Make `l` what it is after `d` was committed.
void apply_diff(Layout& l, const LayoutDiff& d);

// The edge an element of `set` (allow, allow_icmp, allow_icmp6) stands for; nullopt for any other key.
std::optional<topology::AllowKey> allow_key_of(std::uint32_t mask, const std::string& set, const Bytes& key);

// Decoders for tests and reconcile.
std::string verdict_text(bool jump, const std::string& chain);

}  // namespace topowall::nft
