// RAII owners of the C library objects the adapters use (libmnl, libnftnl, libnl, libc's DIR and FILE):
// each is a std::unique_ptr with the one function-object deleter below, defined in handles.cpp so that
// this header pulls in no C library header. Allocate, check, then own:
//
//   NftTablePtr t(nftnl_table_alloc());
//   if (!t) return alloc_error("an nftables table object");
//
// An object handed over to its parent (nftnl_rule_add_expr, nftnl_set_elem_add) goes with release().
// File descriptors have their own owner, UniqueFd (common/fd.hpp).
#pragma once

#include <dirent.h>

#include <cstdio>
#include <memory>
#include <string_view>

#include "topowall/result.hpp"

struct mnl_socket;
struct nftnl_batch;
struct nftnl_table;
struct nftnl_chain;
struct nftnl_rule;
struct nftnl_expr;
struct nftnl_set;
struct nftnl_set_elem;
struct nftnl_set_elems_iter;
struct nftnl_udata_buf;
struct nl_sock;
struct nl_cache;
struct nl_msg;
struct rtnl_link;

namespace topowall {

// Frees each kind with its library's own call (close, free, put or destroy).
struct CFree {
  void operator()(mnl_socket* p) const;
  void operator()(nftnl_batch* p) const;
  void operator()(nftnl_table* p) const;
  void operator()(nftnl_chain* p) const;
  void operator()(nftnl_rule* p) const;
  void operator()(nftnl_expr* p) const;
  void operator()(nftnl_set* p) const;
  void operator()(nftnl_set_elem* p) const;
  void operator()(nftnl_set_elems_iter* p) const;
  void operator()(nftnl_udata_buf* p) const;
  void operator()(nl_sock* p) const;
  void operator()(nl_cache* p) const;
  void operator()(nl_msg* p) const;
  void operator()(rtnl_link* p) const;
  void operator()(DIR* p) const;
  void operator()(std::FILE* p) const;
};

template <typename T>
using CPtr = std::unique_ptr<T, CFree>;

using MnlSocketPtr = CPtr<mnl_socket>;
using NftBatchPtr = CPtr<nftnl_batch>;
using NftTablePtr = CPtr<nftnl_table>;
using NftChainPtr = CPtr<nftnl_chain>;
using NftRulePtr = CPtr<nftnl_rule>;
using NftExprPtr = CPtr<nftnl_expr>;
using NftSetPtr = CPtr<nftnl_set>;
using NftSetElemPtr = CPtr<nftnl_set_elem>;
using NftSetElemsIterPtr = CPtr<nftnl_set_elems_iter>;
using NftUdataPtr = CPtr<nftnl_udata_buf>;
using NlSockPtr = CPtr<nl_sock>;
using NlCachePtr = CPtr<nl_cache>;
using NlMsgPtr = CPtr<nl_msg>;
using RtnlLinkPtr = CPtr<rtnl_link>;
using DirPtr = CPtr<DIR>;
using FilePtr = CPtr<std::FILE>;

// An allocation that came back null: what it was, and what to do.
[[nodiscard]] Error alloc_error(std::string_view what);

// A failed netlink call: "what: strerror(err)", with the capability to ask for on EPERM.
[[nodiscard]] Error netlink_error(std::string_view what, int err);

// A libmnl socket on `bus` (NETLINK_NETFILTER, ...), bound to the multicast `groups` (0: none).
// `what` names it in errors: "open <what> socket: ...", "bind <what> socket: ...".
[[nodiscard]] Result<MnlSocketPtr> open_mnl_socket(int bus, unsigned groups, std::string_view what);

}  // namespace topowall
