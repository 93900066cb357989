// The writer's reading half: what the kernel holds of our tables (the layout, the structure tag,
// elements, counters), for reconciling, tamper checks and edge use.
#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_tables.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <fmt/format.h>

#include "nft/nft_objects.hpp"
#include "nft/rules.hpp"
#include "nft/writer.hpp"

namespace topowall::nft {

using namespace detail;

namespace detail {
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

}  // namespace detail

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
// Every element of one set, dumped: `fn` sees each (the iterator and the allocation checked here).
[[nodiscard]] Status for_each_element(NftSocket& sock, const std::string& table, const std::string& set,
                                      const std::function<void(nftnl_set_elem*)>& fn, std::uint16_t fam = NFPROTO_INET) {
  auto q = set_ref(table, set);
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
        for (auto* e = nftnl_set_elems_iter_next(it.get()); e; e = nftnl_set_elems_iter_next(it.get())) fn(e);
      },
      fam);
  if (!st) return st;
  if (failed) return *failed;
  return ok_status();
}

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
    auto st = for_each_element(sock_, applied_cfg_->table, set, [&](nftnl_set_elem* e) {
      std::uint32_t kl = 0;
      auto* k = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl));
      auto key = k ? allow_key_of(applied_cfg_->mark_mask, set, Bytes(k, k + kl)) : std::nullopt;
      if (!key) return;
      std::uint64_t packets = 0;
      nftnl_set_elem_expr_foreach(e, counter_packets_of, &packets);
      out.push_back({*key, packets});
    });
    if (!st) return st.error();
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
  return for_each_element(
      sock, table, spec.name,
      [&](nftnl_set_elem* e) {
        auto [key, data] = element_of(spec, e);
        elems.put(key, data);
      },
      fam);
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

}  // namespace topowall::nft
