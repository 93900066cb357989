#include "nft/writer.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <fmt/format.h>

#include "nft/rules.hpp"

namespace topowall::nft {

namespace {

constexpr std::size_t kElemsPerMessage = 512;

template <typename T, void (*Free)(const T*)>
struct Handle {
  T* p;
  explicit Handle(T* x) : p(x) {}
  ~Handle() { Free(p); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};
using Table = Handle<nftnl_table, nftnl_table_free>;
using Set = Handle<nftnl_set, nftnl_set_free>;
using Chain = Handle<nftnl_chain, nftnl_chain_free>;

const SetSpec& spec_of(const std::string& name) {
  for (const auto& s : set_specs())
    if (s.name == name) return s;
  throw std::logic_error("unknown set " + name);
}

void put_elements(Batch& b, const std::string& table, const SetSpec& spec,
                  const std::vector<std::pair<Bytes, Bytes>>& elems, bool del) {
  for (std::size_t i = 0; i < elems.size(); i += kElemsPerMessage) {
    Set s(nftnl_set_alloc());
    nftnl_set_set_str(s.p, NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.p, NFTNL_SET_NAME, spec.name.c_str());
    for (std::size_t j = i; j < std::min(elems.size(), i + kElemsPerMessage); ++j) {
      auto* e = nftnl_set_elem_alloc();
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, elems[j].first.data(), static_cast<std::uint32_t>(elems[j].first.size()));
      if (!del && !elems[j].second.empty())
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, elems[j].second.data(),
                           static_cast<std::uint32_t>(elems[j].second.size()));
      nftnl_set_elem_add(s.p, e);
    }
    auto* nlh = b.msg(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM, NFPROTO_INET, del ? 0 : NLM_F_CREATE);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.p);
    b.done();
  }
}

}  // namespace

std::string structure_tag(const topology::RulesetConfig& c) {
  // Bump the version whenever the rules or set layout change shape.
  return fmt::format("topowall/v1 prio={} group={} rate={} burst={}", c.priority, c.nflog_group, c.alert_rate,
                     c.alert_burst);
}

Result<std::optional<std::string>> NftWriter::read_tag(const std::string& table) {
  std::optional<std::string> tag;
  bool found = false;
  Table want(nftnl_table_alloc());
  nftnl_table_set_str(want.p, NFTNL_TABLE_NAME, table.c_str());
  auto st = sock_.request(
      NFT_MSG_GETTABLE, NFPROTO_INET, 0, [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, want.p); },
      [&](const nlmsghdr* m) {
        Table t(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(m, t.p) < 0) return;
        found = true;
        if (nftnl_table_is_set(t.p, NFTNL_TABLE_USERDATA)) {
          std::uint32_t len = 0;
          auto* d = static_cast<const char*>(nftnl_table_get_data(t.p, NFTNL_TABLE_USERDATA, &len));
          tag = std::string(d, len);
        } else {
          tag = std::string();
        }
      });
  if (!st) {
    if (st.error().code == ENOENT) return std::optional<std::string>{};
    return st.error();
  }
  if (!found) return std::optional<std::string>{};
  return tag;
}

Result<std::map<std::string, ElementMap>> NftWriter::read_elements(const std::string& table) {
  std::map<std::string, ElementMap> out;
  for (const auto& spec : set_specs()) {
    auto& elems = out[spec.name];
    Set want(nftnl_set_alloc());
    nftnl_set_set_str(want.p, NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(want.p, NFTNL_SET_NAME, spec.name.c_str());
    auto st = sock_.request(
        NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP,
        [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, want.p); },
        [&](const nlmsghdr* m) {
          Set got(nftnl_set_alloc());
          if (nftnl_set_elems_nlmsg_parse(m, got.p) < 0) return;
          auto* it = nftnl_set_elems_iter_create(got.p);
          for (auto* e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
            if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
                (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END))
              continue;
            std::uint32_t kl = 0, dl = 0;
            auto* k = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl));
            Bytes data;
            if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
              auto* d = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &dl));
              data.assign(d, d + dl);
            }
            elems[Bytes(k, k + kl)] = data;
          }
          nftnl_set_elems_iter_destroy(it);
        });
    if (!st) return st.error();
  }
  return out;
}

Result<std::map<std::string, std::size_t>> NftWriter::read_rule_counts(const std::string& table) {
  std::map<std::string, std::size_t> counts;
  RulePtr want(nftnl_rule_alloc());
  nftnl_rule_set_str(want.get(), NFTNL_RULE_TABLE, table.c_str());
  auto st = sock_.request(
      NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, want.get()); },
      [&](const nlmsghdr* m) {
        RulePtr r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(m, r.get()) < 0) return;
        if (std::string(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) != table) return;
        ++counts[nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN)];
      });
  if (!st) return st.error();
  return counts;
}

Result<bool> NftWriter::structure_intact(const topology::RulesetModel& m) {
  auto tag = read_tag(m.cfg.table);
  if (!tag) return tag.error();
  if (!*tag || **tag != structure_tag(m.cfg)) return false;
  // Someone may have flushed a chain by hand: the rule counts must match too.
  auto counts = read_rule_counts(m.cfg.table);
  if (!counts) return counts.error();
  std::map<std::string, std::size_t> want;
  for (const auto& [chain, r] : build_rules(m.cfg)) ++want[chain];
  return *counts == want;
}

Result<ApplyReport> NftWriter::full_replace(const topology::RulesetModel& m, bool exists) {
  const auto& t = m.cfg.table;
  Batch b(sock_.seq());
  // Delete and recreate in one transaction: packets see the old table or the
  // new one, never neither.
  if (exists) {
    Table del(nftnl_table_alloc());
    nftnl_table_set_str(del.p, NFTNL_TABLE_NAME, t.c_str());
    nftnl_table_nlmsg_build_payload(b.msg(NFT_MSG_DELTABLE, NFPROTO_INET, 0), del.p);
    b.done();
  }
  Table table(nftnl_table_alloc());
  nftnl_table_set_str(table.p, NFTNL_TABLE_NAME, t.c_str());
  auto tag = structure_tag(m.cfg);
  nftnl_table_set_data(table.p, NFTNL_TABLE_USERDATA, tag.data(), static_cast<std::uint32_t>(tag.size()));
  // No NFT_TABLE_F_OWNER: the ruleset must outlive the agent.
  nftnl_table_nlmsg_build_payload(b.msg(NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE), table.p);
  b.done();

  auto want = encode(m);
  std::uint32_t set_id = 1;
  for (const auto& spec : set_specs()) {
    Set s(nftnl_set_alloc());
    nftnl_set_set_str(s.p, NFTNL_SET_TABLE, t.c_str());
    nftnl_set_set_str(s.p, NFTNL_SET_NAME, spec.name.c_str());
    nftnl_set_set_u32(s.p, NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s.p, NFTNL_SET_KEY_LEN, spec.key_len);
    nftnl_set_set_u32(s.p, NFTNL_SET_KEY_TYPE, spec.key_type);
    nftnl_set_set_u32(s.p, NFTNL_SET_FLAGS, spec.flags);
    nftnl_set_set_u32(s.p, NFTNL_SET_ID, set_id++);
    if (spec.data_len) {
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_TYPE, 19);  // mark
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_LEN, spec.data_len);
    }
    nftnl_set_nlmsg_build_payload(b.msg(NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE), s.p);
    b.done();
    const auto& elems = want[spec.name];
    put_elements(b, t, spec, std::vector<std::pair<Bytes, Bytes>>(elems.begin(), elems.end()), false);
  }
  for (const auto& cs : chain_specs()) {
    Chain c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.p, NFTNL_CHAIN_TABLE, t.c_str());
    nftnl_chain_set_str(c.p, NFTNL_CHAIN_NAME, cs.name.c_str());
    nftnl_chain_set_u32(c.p, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (cs.hook >= 0) {
      nftnl_chain_set_u32(c.p, NFTNL_CHAIN_HOOKNUM, static_cast<std::uint32_t>(cs.hook));
      nftnl_chain_set_s32(c.p, NFTNL_CHAIN_PRIO, m.cfg.priority);
      nftnl_chain_set_str(c.p, NFTNL_CHAIN_TYPE, "filter");
      nftnl_chain_set_u32(c.p, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    nftnl_chain_nlmsg_build_payload(b.msg(NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE), c.p);
    b.done();
  }
  for (auto& [chain, r] : build_rules(m.cfg)) {
    nftnl_rule_nlmsg_build_payload(b.msg(NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND), r.get());
    b.done();
  }
  if (auto st = sock_.commit(b); !st) return st.error();
  applied_ = std::move(want);
  applied_cfg_ = m.cfg;
  ++stats_.full_applies;
  ApplyReport rep;
  rep.full = true;
  for (const auto& [n, e] : *applied_) rep.changes += e.size();
  return rep;
}

Status NftWriter::commit_diff(const std::string& table, const ElementDiff& d, std::optional<std::uint32_t> genid) {
  Batch b(sock_.seq(), genid);
  // Deletions first: a reused address changes owner inside one transaction.
  for (const auto& [set, elems] : d.del) put_elements(b, table, spec_of(set), elems, true);
  for (const auto& [set, elems] : d.add) put_elements(b, table, spec_of(set), elems, false);
  return sock_.commit(b);
}

Result<ApplyReport> NftWriter::apply(const topology::RulesetModel& m) {
  ++stats_.applies;
  auto want = encode(m);
  ApplyReport rep;
  if (!applied_ || applied_cfg_ != m.cfg) {
    // First apply (or new structure): reconcile with the kernel instead of
    // rewriting a table that may already be right.
    auto gen = sock_.genid();
    if (!gen) return gen.error();
    auto intact = structure_intact(m);
    if (!intact) return intact.error();
    auto tag = read_tag(m.cfg.table);
    if (!tag) return tag.error();
    if (!*intact) {
      spdlog::info("nftables: {} table inet {}", *tag ? "rebuilding" : "creating", m.cfg.table);
      auto r = full_replace(m, tag->has_value());
      if (!r) ++stats_.errors;
      return r;
    }
    auto have = read_elements(m.cfg.table);
    if (!have) return have.error();
    auto d = diff(*have, want);
    rep.reconciled = true;
    rep.changes = d.size();
    if (d.size()) {
      if (auto st = commit_diff(m.cfg.table, d, *gen); !st) {
        ++stats_.errors;
        return st.error();
      }
    }
    spdlog::info("nftables: table inet {} reconciled ({} element changes)", m.cfg.table, d.size());
    applied_ = std::move(want);
    applied_cfg_ = m.cfg;
    stats_.element_changes += rep.changes;
    if (!rep.changes) ++stats_.noop_applies;
    return rep;
  }
  auto d = diff(*applied_, want);
  rep.changes = d.size();
  if (!d.size()) {
    ++stats_.noop_applies;
    return rep;
  }
  if (auto st = commit_diff(m.cfg.table, d, std::nullopt); !st) {
    ++stats_.errors;
    applied_.reset();  // unknown state: the next apply reconciles from the kernel
    return st.error();
  }
  applied_ = std::move(want);
  stats_.element_changes += rep.changes;
  return rep;
}

Status NftWriter::remove() {
  if (!applied_cfg_) return ok_status();
  Batch b(sock_.seq());
  Table del(nftnl_table_alloc());
  nftnl_table_set_str(del.p, NFTNL_TABLE_NAME, applied_cfg_->table.c_str());
  nftnl_table_nlmsg_build_payload(b.msg(NFT_MSG_DELTABLE, NFPROTO_INET, 0), del.p);
  b.done();
  applied_.reset();
  return sock_.commit(b);
}

}  // namespace topowall::nft
