#include "nft/writer.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <fmt/format.h>

#include "nft/nft_objects.hpp"
#include "nft/rules.hpp"

namespace topowall::nft {

using namespace detail;

namespace {

constexpr std::size_t kElemsPerMessage = 512;

// One element: its key (an interval end flagged), and for a map its value (a mark or a verdict).
NftSetElemPtr make_element(const SetSpec& spec, ByteView key, ByteView data, bool del) {
  NftSetElemPtr e(nftnl_set_elem_alloc());
  if (!e) return e;
  auto klen = static_cast<std::uint32_t>(spec.interval ? key.size() - 1 : key.size());
  nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key.data(), klen);
  if (spec.interval && !key.back()) nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
  if (!del && !data.empty() && spec.data == DataKind::mark) {
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_DATA, data.data(), static_cast<std::uint32_t>(data.size()));
  } else if (!del && !data.empty()) {
    std::string v(data.begin(), data.end());
    nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_VERDICT, v.rfind("jump ", 0) == 0 ? NFT_JUMP : NFT_GOTO);
    nftnl_set_elem_set_str(e.get(), NFTNL_SET_ELEM_CHAIN, v.substr(5).c_str());
  }
  return e;
}

// Elements [first, last) in messages of kElemsPerMessage; `kd` gives an element's key and data. A
// template so that a full apply reads the layout's elements in place (no copy of a million of them).
template <class It, class KeyData>
void put_elements(Batch& b, const std::string& table, const SetSpec& spec, It first, It last, KeyData kd, bool del,
                  std::uint16_t fam = NFPROTO_INET) {
  while (first != last) {
    auto s = set_ref(table, spec.name);
    if (!s) return b.fail(alloc_error("an nftables set object"));
    for (std::size_t j = 0; j < kElemsPerMessage && first != last; ++j, ++first) {
      auto [key, data] = kd(first);
      auto e = make_element(spec, key, data, del);
      if (!e) return b.fail(alloc_error("an nftables set element"));
      nftnl_set_elem_add(s.get(), e.release());
    }
    b.add(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM, fam, del ? 0 : NLM_F_CREATE,
          [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, s.get()); });
  }
}

void put_elements(Batch& b, const std::string& table, const SetSpec& spec,
                  const std::vector<std::pair<Bytes, Bytes>>& elems, bool del, std::uint16_t fam = NFPROTO_INET) {
  auto kd = [](auto it) { return std::pair<ByteView, ByteView>(it->first, it->second); };
  put_elements(b, table, spec, elems.begin(), elems.end(), kd, del, fam);
}

void put_elements(Batch& b, const std::string& table, const SetSpec& spec, const ElementMap& elems, bool del,
                  std::uint16_t fam = NFPROTO_INET) {
  auto kd = [](const ElementMap::const_iterator& it) { return std::pair(it.key(), it.data()); };
  put_elements(b, table, spec, elems.begin(), elems.end(), kd, del, fam);
}

void put_set(Batch& b, const std::string& table, const SetSpec& spec, std::uint32_t id, std::uint16_t fam = NFPROTO_INET) {
  auto s = set_ref(table, spec.name);
  // Marks are host-endian; nft reads that from the set's user data (as it
  // writes it), and would print a lone mark key or mark value swapped without.
  NftUdataPtr ud(nftnl_udata_buf_alloc(64));
  if (!s || !ud) return b.fail(alloc_error("an nftables set object"));
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, fam);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
  std::uint32_t flags = spec.interval ? NFT_SET_INTERVAL : 0;
  if (spec.data == DataKind::verdict) {
    flags |= NFT_SET_MAP;
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 0);
  } else if (spec.data == DataKind::mark) {
    flags |= NFT_SET_MAP;
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, 19);  // nft's "mark" datatype
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 4);
  }
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
  nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
  if (spec.counters) {  // a template: the kernel gives every element added later its own counter
    NftExprPtr counter(nftnl_expr_alloc("counter"));
    if (!counter) return b.fail(alloc_error("an nftables counter expression"));
    nftnl_set_add_expr(s.get(), counter.release());
  }
  constexpr std::uint32_t kHostEndian = 1, kBigEndian = 2, kMarkType = 19, kIfIndexType = 20;
  if (spec.key_type == kMarkType || spec.key_type == kIfIndexType) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kHostEndian);
  else if (spec.data == DataKind::mark) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kBigEndian);
  if (spec.data == DataKind::mark) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, kHostEndian);
  if (nftnl_udata_buf_len(ud.get()) > 0)
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
  b.add(NFT_MSG_NEWSET, fam, NLM_F_CREATE, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, s.get()); });
}

void put_chain(Batch& b, const topology::RulesetConfig& cfg, const ChainSpec& spec, std::uint16_t fam = NFPROTO_INET) {
  auto c = chain_ref(cfg.table, spec.name);
  if (!c) return b.fail(alloc_error("an nftables chain object"));
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, fam);
  if (int hook = hook_of(spec.kind); hook >= 0) {
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, static_cast<std::uint32_t>(hook));
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, spec.kind == ChainKind::guard ? cfg.guard_priority : cfg.priority);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  }
  b.add(NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE, [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, c.get()); });
}

void put_rules(Batch& b, const topology::RulesetConfig& cfg, const ChainSpec& spec, std::uint16_t fam = NFPROTO_INET) {
  auto rules = build_rules(cfg, spec, fam);
  if (!rules) return b.fail(rules.error());
  for (auto& r : *rules)
    b.add(NFT_MSG_NEWRULE, fam, NLM_F_CREATE | NLM_F_APPEND, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, r.get()); });
}

void put_table(Batch& b, const std::string& name, std::uint16_t fam, std::uint16_t type, const std::string& tag = "") {
  auto t = table_ref(name);
  if (!t) return b.fail(alloc_error("an nftables table object"));
  if (!tag.empty()) nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, tag.data(), static_cast<std::uint32_t>(tag.size()));
  b.add(type, fam, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0,
        [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, t.get()); });
}

// The bridge-family twin of the guard, rebuilt whole (it holds O(local endpoints) elements): add (a
// no-op if it exists), delete, add, so the batch never fails on a missing table and packets meet the
// old guard or the new one.
void put_bridge_guard(Batch& b, const topology::RulesetConfig& cfg, const Layout& want) {
  put_table(b, cfg.table, NFPROTO_BRIDGE, NFT_MSG_NEWTABLE);
  put_table(b, cfg.table, NFPROTO_BRIDGE, NFT_MSG_DELTABLE);
  if (!cfg.guard) return;
  put_table(b, cfg.table, NFPROTO_BRIDGE, NFT_MSG_NEWTABLE);
  std::uint32_t set_id = 1000;
  for (const auto& name : want.set_order)
    if (guard_set(name)) put_set(b, cfg.table, want.sets.at(name), set_id++, NFPROTO_BRIDGE);
  for (const auto& c : want.chains)
    if (bridge_chain(c)) put_chain(b, cfg, c, NFPROTO_BRIDGE);
  for (const auto& c : want.chains)
    if (bridge_chain(c)) put_rules(b, cfg, c, NFPROTO_BRIDGE);
  for (const auto& [name, elems] : want.elements)
    if (guard_set(name) && !elems.empty())
      put_elements(b, cfg.table, want.sets.at(name), elems, false, NFPROTO_BRIDGE);
}

void flush_chain(Batch& b, const std::string& table, const std::string& name) {
  auto r = rule_ref(table, name);
  if (!r) return b.fail(alloc_error("an nftables rule object"));
  b.add(NFT_MSG_DELRULE, NFPROTO_INET, 0, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, r.get()); });
}

void del_chain(Batch& b, const std::string& table, const std::string& name) {
  flush_chain(b, table, name);  // a chain must be empty to go
  auto c = chain_ref(table, name);
  if (!c) return b.fail(alloc_error("an nftables chain object"));
  b.add(NFT_MSG_DELCHAIN, NFPROTO_INET, 0, [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, c.get()); });
}

void del_set(Batch& b, const std::string& table, const std::string& name) {
  auto s = set_ref(table, name);
  if (!s) return b.fail(alloc_error("an nftables set object"));
  b.add(NFT_MSG_DELSET, NFPROTO_INET, 0, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, s.get()); });
}

}  // namespace

std::string structure_tag(const topology::RulesetConfig& c) {
  // Bump the version whenever the rules or the set layout change shape.
  return fmt::format("topowall/v12 prio={} group={} rate={} burst={} mask={:#x} guard={}", c.priority, c.nflog_group,
                     c.alert_rate, c.alert_burst, c.mark_mask, c.guard ? c.guard_priority : 0);
}

Status NftWriter::commit(const topology::RulesetModel& m, const LayoutDiff& d, std::optional<std::uint32_t> genid,
                         const Layout* bridge) {
  const auto& t = m.cfg.table;
  // Set specs: fixed ones plus those of per-id sets (same shape for every id).
  auto spec = [&](const std::string& name) -> SetSpec {
    for (const auto& s : d.add_sets)
      if (s.name == name) return s;
    if (applied_) {
      auto it = applied_->sets.find(name);
      if (it != applied_->sets.end()) return it->second;
    }
    return layout(m).sets.at(name);
  };
  Batch b(sock_.seq(), genid);
  std::uint32_t set_id = 1;
  // Order matters: objects before what refers to them, references before
  // what they refer to goes away. Deletions first so a reused address
  // changes owner inside this one transaction.
  for (const auto& s : d.add_sets) put_set(b, t, s, set_id++);
  for (const auto& c : d.flush_chains) flush_chain(b, t, c);
  for (const auto& c : d.add_chains) put_chain(b, m.cfg, c);
  for (const auto& c : d.add_chains) put_rules(b, m.cfg, c);
  for (const auto& [set, elems] : d.del) put_elements(b, t, spec(set), elems, true);
  for (const auto& [set, elems] : d.add) put_elements(b, t, spec(set), elems, false);
  for (const auto& c : d.del_chains) del_chain(b, t, c);
  for (const auto& s : d.del_sets) del_set(b, t, s);
  // The bridge guard: rebuilt whole when the inet table is reconciled, else the same element changes,
  // in this same transaction (an address changes owner in both tables at once).
  if (bridge) {
    put_bridge_guard(b, m.cfg, *bridge);
  } else if (m.cfg.guard) {
    for (const auto& [set, elems] : d.del)
      if (guard_set(set)) put_elements(b, t, spec(set), elems, true, NFPROTO_BRIDGE);
    for (const auto& [set, elems] : d.add)
      if (guard_set(set)) put_elements(b, t, spec(set), elems, false, NFPROTO_BRIDGE);
  }
  return sock_.commit(b);
}

Status NftWriter::commit_incremental(const topology::RulesetModel& m, const LayoutDiff& d) {
  auto st = commit(m, d, std::nullopt);
  if (!st) {
    ++stats_.errors;
    applied_.reset();  // unknown state: the next apply reconciles from the kernel
  }
  return st;
}

Result<ApplyReport> NftWriter::full_replace(const topology::RulesetModel& m, const Layout& want, bool exists) {
  const auto& t = m.cfg.table;
  Batch b(sock_.seq());
  // Delete and recreate in one transaction: packets meet the old table or
  // the new one, never neither.
  if (exists) put_table(b, t, NFPROTO_INET, NFT_MSG_DELTABLE);
  // No NFT_TABLE_F_OWNER: the ruleset must outlive the agent.
  put_table(b, t, NFPROTO_INET, NFT_MSG_NEWTABLE, structure_tag(m.cfg));
  std::uint32_t set_id = 1;
  for (const auto& name : want.set_order) put_set(b, t, want.sets.at(name), set_id++);
  for (const auto& c : want.chains) put_chain(b, m.cfg, c);
  for (const auto& c : want.chains) put_rules(b, m.cfg, c);
  for (const auto& [name, elems] : want.elements)
    put_elements(b, t, want.sets.at(name), elems, false);
  put_bridge_guard(b, m.cfg, want);
  if (auto st = sock_.commit(b); !st) return st.error();
  ApplyReport rep;
  rep.full = true;
  for (const auto& [n, e] : want.elements) rep.changes += e.size();
  ++stats_.full_applies;
  return rep;
}

Result<ApplyReport> NftWriter::apply(const topology::RulesetModel& m) {
  ++stats_.applies;
  auto want = layout(m);
  ApplyReport rep;
  if (!applied_ || applied_cfg_ != m.cfg) {
    // First apply, or new structure: reconcile with what the kernel holds
    // rather than rewrite a table that may already be right.
    auto gen = sock_.genid();
    if (!gen) return gen.error();
    auto tag = read_tag(m.cfg.table);
    if (!tag) return tag.error();
    if (!*tag || **tag != structure_tag(m.cfg)) {
      spdlog::info("nftables: {} table inet {}", *tag ? "rebuilding" : "creating", m.cfg.table);
      auto r = full_replace(m, want, tag->has_value());
      if (!r) {
        ++stats_.errors;
        return r;
      }
      applied_ = std::move(want);
      applied_cfg_ = m.cfg;
      note_commit();
      return r;
    }
    auto have = read_kernel(m);
    if (!have) return have.error();
    auto d = diff(**have, want);
    rep.reconciled = true;
    rep.changes = d.changes();
    // Always committed: the bridge guard is not read back, so it is rebuilt with the reconcile.
    if (auto st = commit(m, d, *gen, &want); !st) {
      ++stats_.errors;
      return st.error();
    }
    spdlog::info("nftables: table inet {} reconciled with the kernel ({} changes)", m.cfg.table, rep.changes);
  } else {
    auto d = diff(*applied_, want);
    rep.changes = d.changes();
    if (d.empty()) {
      ++stats_.noop_applies;
      return rep;
    }
    if (auto st = commit_incremental(m, d); !st) return st.error();
  }
  applied_ = std::move(want);
  applied_cfg_ = m.cfg;
  stats_.element_changes += rep.changes;
  if (!rep.changes) ++stats_.noop_applies;
  note_commit();
  return rep;
}

Result<ApplyReport> NftWriter::apply_patch(const topology::RulesetModel& m, const std::vector<IpAddr>& addrs,
                                           const std::vector<topology::AllowKey>& keys) {
  if (!applied_ || applied_cfg_ != m.cfg) return apply(m);
  ++stats_.applies;
  auto d = patch_diff(*applied_, m, addrs, keys);
  ApplyReport rep;
  rep.changes = d.changes();
  if (d.empty()) {
    ++stats_.noop_applies;
    return rep;
  }
  if (auto st = commit_incremental(m, d); !st) return st.error();
  apply_diff(*applied_, d);
  stats_.element_changes += rep.changes;
  note_commit();
  return rep;
}

WriterStats NftWriter::stats() const {
  auto s = stats_;
  if (applied_cfg_)
    if (auto n = counter_packets(applied_cfg_->table, "taken")) s.ctmark_taken = *n;
  return s;
}

Status NftWriter::remove() {
  if (!applied_cfg_) return ok_status();
  return remove_table(applied_cfg_->table);
}

Status NftWriter::remove_table(const std::string& table) {
  auto tag = read_tag(table);
  if (!tag) return tag.error();
  if (!*tag) return ok_status();
  Batch b(sock_.seq());
  put_table(b, table, NFPROTO_INET, NFT_MSG_DELTABLE);
  put_table(b, table, NFPROTO_BRIDGE, NFT_MSG_NEWTABLE);  // so that deleting it cannot fail
  put_table(b, table, NFPROTO_BRIDGE, NFT_MSG_DELTABLE);
  applied_.reset();
  return sock_.commit(b);
}

}  // namespace topowall::nft
