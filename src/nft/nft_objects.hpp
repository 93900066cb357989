// The nftables adapter's own helpers, shared by the writer's two halves (writer.cpp programs the
// kernel, writer_read.cpp reads it back): named object references and one dump request.
#pragma once

#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>

#include <functional>
#include <optional>
#include <string>

#include "common/handles.hpp"
#include "nft/elements.hpp"
#include "nft/nft_socket.hpp"
#include "nft/rules.hpp"
#include "topowall/result.hpp"

namespace topowall::nft::detail {

// A libnftnl object naming a table and, unless "", its own name (a set's, a chain's, a rule's
// chain): the start of a message, or a query. Null: out of memory.
template <typename T>
inline CPtr<T> named(T* (*alloc)(), int (*set_str)(T*, std::uint16_t, const char*), std::uint16_t table_attr,
              const std::string& table, std::uint16_t name_attr, const std::string& name) {
  CPtr<T> o(alloc());
  if (!o) return o;
  set_str(o.get(), table_attr, table.c_str());
  if (!name.empty()) set_str(o.get(), name_attr, name.c_str());
  return o;
}

inline NftSetPtr set_ref(const std::string& table, const std::string& set) {
  return named(nftnl_set_alloc, nftnl_set_set_str, NFTNL_SET_TABLE, table, NFTNL_SET_NAME, set);
}
inline NftChainPtr chain_ref(const std::string& table, const std::string& chain) {
  return named(nftnl_chain_alloc, nftnl_chain_set_str, NFTNL_CHAIN_TABLE, table, NFTNL_CHAIN_NAME, chain);
}
inline NftRulePtr rule_ref(const std::string& table, const std::string& chain) {
  return named(nftnl_rule_alloc, nftnl_rule_set_str, NFTNL_RULE_TABLE, table, NFTNL_RULE_CHAIN, chain);
}
inline NftTablePtr table_ref(const std::string& table) {
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

// The chains the bridge-family twin of the guard holds.
inline bool bridge_chain(const ChainSpec& c) {
  return c.kind == ChainKind::guard || c.name == "alert_drop_spoof" || c.name == "alert_drop_unclassified";
}

// One element of a dumped set, as Layout holds it: the key (with the interval-end byte) and the value.
[[nodiscard]] std::pair<Bytes, Bytes> element_of(const SetSpec& spec, nftnl_set_elem* e);

}  // namespace topowall::nft::detail
