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

#include "nft/rules.hpp"

namespace topowall::nft {

namespace {

constexpr std::size_t kElemsPerMessage = 512;

// A libnftnl object naming a table and, unless "", its own name (a set's, a chain's, a rule's
// chain): the start of a message, or a query. Null: out of memory.
template <typename T>
CPtr<T> named(T* (*alloc)(), int (*set_str)(T*, std::uint16_t, const char*), std::uint16_t table_attr,
              const std::string& table, std::uint16_t name_attr, const std::string& name) {
  CPtr<T> o(alloc());
  if (!o) return o;
  set_str(o.get(), table_attr, table.c_str());
  if (!name.empty()) set_str(o.get(), name_attr, name.c_str());
  return o;
}

NftSetPtr set_ref(const std::string& table, const std::string& set) {
  return named(nftnl_set_alloc, nftnl_set_set_str, NFTNL_SET_TABLE, table, NFTNL_SET_NAME, set);
}
NftChainPtr chain_ref(const std::string& table, const std::string& chain) {
  return named(nftnl_chain_alloc, nftnl_chain_set_str, NFTNL_CHAIN_TABLE, table, NFTNL_CHAIN_NAME, chain);
}
NftRulePtr rule_ref(const std::string& table, const std::string& chain) {
  return named(nftnl_rule_alloc, nftnl_rule_set_str, NFTNL_RULE_TABLE, table, NFTNL_RULE_CHAIN, chain);
}
NftTablePtr table_ref(const std::string& table) {
  return named(nftnl_table_alloc, nftnl_table_set_str, NFTNL_TABLE_NAME, table, NFTNL_TABLE_NAME, "");
}

// One request; every reply message is parsed into a fresh T (`alloc`, `parse`) and, if it parses, handed
// to `fn`. An object that cannot be allocated ends it with an Error; the kernel's errors (ENOENT too) pass.
template <typename T, typename Fn>
[[nodiscard]] Status query(NftSocket& sock, std::uint16_t type, std::uint16_t flags,
                           const std::function<void(nlmsghdr*)>& fill, T* (*alloc)(), int (*parse)(const nlmsghdr*, T*),
                           Fn&& fn, std::uint16_t fam = NFPROTO_INET) {
  std::optional<Error> failed;
  auto st = sock.request(type, fam, flags, fill, [&](const nlmsghdr* m) {
    if (failed) return;
    CPtr<T> obj(alloc());
    if (!obj) {
      failed = alloc_error("an nftables object for a kernel reply");
      return;
    }
    if (parse(m, obj.get()) >= 0) fn(obj.get());
  });
  if (!st) return st;
  if (failed) return *failed;
  return ok_status();
}

// One element: its key (an interval end flagged), and for a map its value (a mark or a verdict).
NftSetElemPtr make_element(const SetSpec& spec, const Bytes& key, const Bytes& data, bool del) {
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

void put_elements(Batch& b, const std::string& table, const SetSpec& spec,
                  const std::vector<std::pair<Bytes, Bytes>>& elems, bool del, std::uint16_t fam = NFPROTO_INET) {
  for (std::size_t i = 0; i < elems.size(); i += kElemsPerMessage) {
    auto s = set_ref(table, spec.name);
    if (!s) return b.fail(alloc_error("an nftables set object"));
    for (std::size_t j = i; j < std::min(elems.size(), i + kElemsPerMessage); ++j) {
      auto e = make_element(spec, elems[j].first, elems[j].second, del);
      if (!e) return b.fail(alloc_error("an nftables set element"));
      nftnl_set_elem_add(s.get(), e.release());
    }
    b.add(del ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM, fam, del ? 0 : NLM_F_CREATE,
          [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, s.get()); });
  }
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

// The chains the bridge-family twin of the guard holds.
bool bridge_chain(const ChainSpec& c) {
  return c.kind == ChainKind::guard || c.name == "alert_drop_spoof" || c.name == "alert_drop_unclassified";
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
      put_elements(b, cfg.table, want.sets.at(name), std::vector<std::pair<Bytes, Bytes>>(elems.begin(), elems.end()),
                   false, NFPROTO_BRIDGE);
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

// One element of a dumped set, as Layout holds it: the key (with the interval-end byte) and the value.
std::pair<Bytes, Bytes> element_of(const SetSpec& spec, nftnl_set_elem* e) {
  std::uint32_t kl = 0;
  auto* k = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl));
  Bytes key(k, k + kl), data;
  if (spec.interval) {
    bool end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
               (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END);
    key.push_back(end ? 0 : 1);
  }
  if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)) {
    auto v = verdict_text(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT) == static_cast<std::uint32_t>(NFT_JUMP),
                          dumped_str(nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)));
    data.assign(v.begin(), v.end());
  } else if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
    std::uint32_t dl = 0;
    auto* dp = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &dl));
    data.assign(dp, dp + dl);
  }
  return {std::move(key), std::move(data)};
}

[[nodiscard]] Result<std::size_t> expected_rules(const topology::RulesetConfig& cfg, const ChainSpec& spec,
                                                 std::uint16_t fam = NFPROTO_INET) {
  auto rules = build_rules(cfg, spec, fam);
  if (!rules) return rules.error();
  return rules->size();
}

}  // namespace

std::string structure_tag(const topology::RulesetConfig& c) {
  // Bump the version whenever the rules or the set layout change shape.
  return fmt::format("topowall/v12 prio={} group={} rate={} burst={} mask={:#x} guard={}", c.priority, c.nflog_group,
                     c.alert_rate, c.alert_burst, c.mark_mask, c.guard ? c.guard_priority : 0);
}

Result<std::optional<std::string>> NftWriter::read_tag(const std::string& table) {
  std::optional<std::string> tag;
  auto want = table_ref(table);
  if (!want) return alloc_error("an nftables table object");
  auto st = query(
      sock_, NFT_MSG_GETTABLE, 0, [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, want.get()); },
      nftnl_table_alloc, nftnl_table_nlmsg_parse, [&](nftnl_table* t) {
        tag = std::string();
        if (nftnl_table_is_set(t, NFTNL_TABLE_USERDATA)) {
          std::uint32_t len = 0;
          auto* d = static_cast<const char*>(nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &len));
          tag = std::string(d, len);
        }
      });
  if (!st) {
    if (st.error().code == ENOENT) return std::optional<std::string>{};
    return st.error();
  }
  return tag;
}

Result<bool> NftWriter::has_element(const std::string& table, const std::string& set, const Bytes& key) {
  auto q = set_ref(table, set);
  NftSetElemPtr e(nftnl_set_elem_alloc());
  if (!q || !e) return alloc_error("an nftables set element query");
  nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key.data(), static_cast<std::uint32_t>(key.size()));
  nftnl_set_elem_add(q.get(), e.release());
  bool found = false;
  auto st = sock_.request(
      NFT_MSG_GETSETELEM, NFPROTO_INET, 0, [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, q.get()); },
      [&](const nlmsghdr*) { found = true; });
  if (!st) {
    if (st.error().code == ENOENT) return false;
    return st.error();
  }
  return found;
}

namespace {
int counter_packets_of(nftnl_expr* e, void* data) {
  if (dumped_str(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "counter")
    *static_cast<std::uint64_t*>(data) = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
  return 0;
}
}  // namespace

// One dump per allow set (elements with their counters): O(edges), for a periodic read only.
Result<std::vector<AllowUse>> NftWriter::allow_use() {
  std::vector<AllowUse> out;
  if (!applied_cfg_) return out;
  for (const char* set : {"allow", "allow_icmp", "allow_icmp6"}) {
    auto q = set_ref(applied_cfg_->table, set);
    if (!q) return alloc_error("an nftables set query");
    std::optional<Error> failed;
    auto st = query(
        sock_, NFT_MSG_GETSETELEM, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, q.get()); },
        nftnl_set_alloc, nftnl_set_elems_nlmsg_parse, [&](nftnl_set* got) {
          NftSetElemsIterPtr it(nftnl_set_elems_iter_create(got));
          if (!it) {
            failed = alloc_error("an nftables set element iterator");
            return;
          }
          for (auto* e = nftnl_set_elems_iter_next(it.get()); e; e = nftnl_set_elems_iter_next(it.get())) {
            std::uint32_t kl = 0;
            auto* k = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl));
            auto key = k ? allow_key_of(applied_cfg_->mark_mask, set, Bytes(k, k + kl)) : std::nullopt;
            if (!key) continue;
            std::uint64_t packets = 0;
            nftnl_set_elem_expr_foreach(e, counter_packets_of, &packets);
            out.push_back({*key, packets});
          }
        });
    if (!st) return st.error();
    if (failed) return *failed;
  }
  return out;
}

namespace {

// The chains of `table` into `have` (specs from `want` where it names them), and how many rules each holds.
[[nodiscard]] Status read_chains(NftSocket& sock, const std::string& table, const Layout& want, Layout& have,
                                 std::map<std::string, std::size_t>& rules, std::uint16_t fam = NFPROTO_INET) {
  auto cq = chain_ref(table, "");
  auto rq = rule_ref(table, "");
  if (!cq || !rq) return alloc_error("an nftables chain or rule query");
  auto st = query(
      sock, NFT_MSG_GETCHAIN, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, cq.get()); },
      nftnl_chain_alloc, nftnl_chain_nlmsg_parse, [&](nftnl_chain* c) {
        if (table != dumped_str(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE))) return;
        std::string name = dumped_str(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
        ChainSpec spec{name, ChainKind::check};
        for (const auto& w : want.chains)
          if (w.name == name) spec = w;
        have.chains.push_back(spec);
        if (spec.kind == ChainKind::src) have.id_objects.insert(spec.id);
        rules[name];
      },
      fam);
  if (!st) return st;
  return query(
      sock, NFT_MSG_GETRULE, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rq.get()); },
      nftnl_rule_alloc, nftnl_rule_nlmsg_parse,
      [&](nftnl_rule* r) {
        if (table == dumped_str(nftnl_rule_get_str(r, NFTNL_RULE_TABLE)))
          ++rules[dumped_str(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN))];
      },
      fam);
}

[[nodiscard]] Status read_set_names(NftSocket& sock, const std::string& table, std::vector<std::string>& names) {
  auto q = set_ref(table, "");
  if (!q) return alloc_error("an nftables set query");
  return query(
      sock, NFT_MSG_GETSET, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, q.get()); },
      nftnl_set_alloc, nftnl_set_nlmsg_parse, [&](nftnl_set* s) {
        if (table == dumped_str(nftnl_set_get_str(s, NFTNL_SET_TABLE))) names.push_back(dumped_str(nftnl_set_get_str(s, NFTNL_SET_NAME)));
      });
}

[[nodiscard]] Status read_elements(NftSocket& sock, const std::string& table, const SetSpec& spec, ElementMap& elems,
                                   std::uint16_t fam = NFPROTO_INET) {
  auto q = set_ref(table, spec.name);
  if (!q) return alloc_error("an nftables set query");
  std::optional<Error> failed;
  auto st = query(
      sock, NFT_MSG_GETSETELEM, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, q.get()); },
      nftnl_set_alloc, nftnl_set_elems_nlmsg_parse, [&](nftnl_set* got) {
        NftSetElemsIterPtr it(nftnl_set_elems_iter_create(got));
        if (!it) {
          failed = alloc_error("an nftables set element iterator");
          return;
        }
        for (auto* e = nftnl_set_elems_iter_next(it.get()); e; e = nftnl_set_elems_iter_next(it.get())) {
          auto [key, data] = element_of(spec, e);
          elems[key] = data;
        }
      },
      fam);
  if (!st) return st;
  if (failed) return *failed;
  return ok_status();
}

}  // namespace

Result<std::optional<Layout>> NftWriter::read_kernel(const topology::RulesetModel& want_model) {
  const auto& table = want_model.cfg.table;
  auto tag = read_tag(table);
  if (!tag) return tag.error();
  if (!*tag) return std::optional<Layout>{};
  const auto want = layout(want_model);
  Layout have;
  std::map<std::string, std::size_t> rules;
  if (auto st = read_chains(sock_, table, want, have, rules); !st) return st.error();
  // A chain whose rules differ in number from ours was edited by hand: drop it
  // from `have` so that it is deleted and rebuilt.
  for (const auto& c : have.chains)
    for (const auto& w : want.chains) {
      if (w.name != c.name) continue;
      auto n = expected_rules(want_model.cfg, w);
      if (!n) return n.error();
      if (rules[c.name] != *n) have.damaged.insert(c.name);
    }
  std::vector<std::string> set_names;
  if (auto st = read_set_names(sock_, table, set_names); !st) return st.error();
  for (const auto& name : set_names) {
    auto ws = want.sets.find(name);
    SetSpec spec = ws != want.sets.end() ? ws->second : SetSpec{name};
    have.sets[name] = spec;
    if (auto st = read_elements(sock_, table, spec, have.elements[name]); !st) return st.error();
  }
  return std::optional<Layout>(std::move(have));
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
    put_elements(b, t, want.sets.at(name), std::vector<std::pair<Bytes, Bytes>>(elems.begin(), elems.end()), false);
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

Result<bool> NftWriter::intact(const topology::RulesetModel& m) {
  if (!applied_ || applied_cfg_ != m.cfg) return false;
  auto tag = read_tag(m.cfg.table);
  if (!tag) return tag.error();
  if (!*tag || **tag != structure_tag(m.cfg)) return false;
  auto have = read_kernel(m);
  if (!have) return have.error();
  if (!*have || !(*have)->damaged.empty() || !diff(**have, *applied_).empty()) return false;
  return m.cfg.guard ? bridge_intact(m.cfg) : Result<bool>(true);
}

// The bridge twin holds the guard's chains with their rules and the guard's sets element for element.
Result<bool> NftWriter::bridge_intact(const topology::RulesetConfig& cfg) {
  Layout want, have;
  for (const auto& c : applied_->chains)
    if (bridge_chain(c)) want.chains.push_back(c);
  std::map<std::string, std::size_t> rules;
  if (auto st = read_chains(sock_, cfg.table, want, have, rules, NFPROTO_BRIDGE); !st) return st.error();
  if (have.chains.size() != want.chains.size()) return false;
  for (const auto& c : want.chains) {
    auto n = expected_rules(cfg, c, NFPROTO_BRIDGE);
    if (!n) return n.error();
    if (!rules.count(c.name) || rules[c.name] != *n) return false;
  }
  for (const auto& [name, spec] : applied_->sets) {
    if (!guard_set(name)) continue;
    ElementMap got;
    if (auto st = read_elements(sock_, cfg.table, spec, got, NFPROTO_BRIDGE); !st) {
      if (st.error().code == ENOENT) return false;
      return st.error();
    }
    if (got != applied_->elements[name]) return false;
  }
  return true;
}

Result<bool> NftWriter::changed_since_commit() {
  auto gen = sock_.genid();
  if (!gen) return gen.error();
  return !committed_gen_ || *committed_gen_ != *gen;
}

WriterStats NftWriter::stats() const {
  auto s = stats_;
  if (applied_cfg_)
    if (auto n = counter_packets(applied_cfg_->table, "taken")) s.ctmark_taken = *n;
  return s;
}

// Packets counted by the counters of one chain's rules.
Result<std::uint64_t> NftWriter::counter_packets(const std::string& table, const std::string& chain) const {
  std::uint64_t packets = 0;
  auto rq = rule_ref(table, chain);
  if (!rq) return alloc_error("an nftables rule query");
  auto st = query(
      sock_, NFT_MSG_GETRULE, NLM_F_DUMP, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rq.get()); },
      nftnl_rule_alloc, nftnl_rule_nlmsg_parse, [&](nftnl_rule* r) {
        if (table != dumped_str(nftnl_rule_get_str(r, NFTNL_RULE_TABLE)) || chain != dumped_str(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN)))
          return;
        nftnl_expr_foreach(
            r,
            [](nftnl_expr* e, void* out) {
              if (dumped_str(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "counter")
                *static_cast<std::uint64_t*>(out) += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
              return 0;
            },
            &packets);
      });
  if (!st) return st.error();
  return packets;
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
