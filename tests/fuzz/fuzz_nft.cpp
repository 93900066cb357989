// nftables messages the agent reads: change notifications (NFNLGRP_NFTABLES) through NftMonitor's
// ChangeFilter, and the replies of the writer's dumps (tables, chains, rules, sets, set elements)
// through libnftnl's parsers and the reads the writer makes of what they return
// (nft::dumped_str: a name the kernel left out is "", never a null std::string).
// One datagram, walked message by message as both read theirs.
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <string>

#include "common/handles.hpp"
#include "fuzz_support.hpp"
#include "nft/monitor.hpp"
#include "nft/writer.hpp"

using namespace topowall;

namespace {
void dumps(const nlmsghdr* m) {
  if (NftTablePtr t(nftnl_table_alloc()); t && nftnl_table_nlmsg_parse(m, t.get()) >= 0 &&
                                          nftnl_table_is_set(t.get(), NFTNL_TABLE_USERDATA)) {
    std::uint32_t len = 0;
    auto* d = static_cast<const char*>(nftnl_table_get_data(t.get(), NFTNL_TABLE_USERDATA, &len));
    if (d) (void)std::string(d, len);
  }
  if (NftChainPtr c(nftnl_chain_alloc()); c && nftnl_chain_nlmsg_parse(m, c.get()) >= 0) {
    (void)nft::dumped_str(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE));
    (void)nft::dumped_str(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME));
  }
  if (NftRulePtr r(nftnl_rule_alloc()); r && nftnl_rule_nlmsg_parse(m, r.get()) >= 0) {
    (void)nft::dumped_str(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE));
    (void)nft::dumped_str(nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN));
    std::uint64_t packets = 0;
    nftnl_expr_foreach(
        r.get(),
        [](nftnl_expr* e, void* out) {
          if (nft::dumped_str(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "counter")
            *static_cast<std::uint64_t*>(out) += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
          return 0;
        },
        &packets);
  }
  if (NftSetPtr s(nftnl_set_alloc()); s && nftnl_set_nlmsg_parse(m, s.get()) >= 0) {
    (void)nft::dumped_str(nftnl_set_get_str(s.get(), NFTNL_SET_TABLE));
    (void)nft::dumped_str(nftnl_set_get_str(s.get(), NFTNL_SET_NAME));
  }
  if (NftSetPtr s(nftnl_set_alloc()); s && nftnl_set_elems_nlmsg_parse(m, s.get()) >= 0) {
    NftSetElemsIterPtr it(nftnl_set_elems_iter_create(s.get()));
    for (auto* e = it ? nftnl_set_elems_iter_next(it.get()) : nullptr; e; e = nftnl_set_elems_iter_next(it.get())) {
      std::uint32_t kl = 0, dl = 0;
      auto* k = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl));
      if (k) (void)std::string(reinterpret_cast<const char*>(k), kl);
      (void)nft::dumped_str(nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN));
      auto* d = static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &dl));
      if (d) (void)std::string(reinterpret_cast<const char*>(d), dl);
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::GuardedBytes dgram(data, size);
  nft::ChangeFilter filter("topowall", 4242);
  fuzz::for_each_message(dgram, [&](const nlmsghdr* nlh) {
    (void)filter.feed(nlh);
    dumps(nlh);
  });
  return 0;
}
