// The nftables adapter's rule builder (internal to src/nft): one expression per call, every allocation
// checked, and the address offsets of each IP family. rules.cpp composes the chains from it.
#pragma once

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "common/handles.hpp"

namespace topowall::nft::detail {

constexpr std::uint32_t kR1 = NFT_REG_1;  // 16 bytes: addresses, and the first key slot
constexpr std::uint32_t kR9 = NFT_REG32_01;
constexpr std::uint32_t kR10 = NFT_REG32_02;
constexpr std::uint32_t kR11 = NFT_REG32_03;

// A rule under construction. An allocation that fails marks it failed: take() then gives null, and
// build_rules reports it.
class Rule {
 public:
  Rule(const std::string& table, const std::string& chain, std::uint32_t family = NFPROTO_INET) : r_(nftnl_rule_alloc()) {
    if (!r_) return;
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_set_u32(r_.get(), NFTNL_RULE_FAMILY, family);
  }
  // meta and ct: a key, loaded into or stored from a register.
  Rule& keyed(const char* name, std::uint16_t key_attr, std::uint32_t key, std::uint16_t reg_attr, std::uint32_t reg) {
    return add(name, [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, key_attr, key);
      nftnl_expr_set_u32(e, reg_attr, reg);
    });
  }
  Rule& meta(std::uint32_t key, std::uint32_t dreg) { return keyed("meta", NFTNL_EXPR_META_KEY, key, NFTNL_EXPR_META_DREG, dreg); }
  Rule& meta_set(std::uint32_t key, std::uint32_t sreg) {
    return keyed("meta", NFTNL_EXPR_META_KEY, key, NFTNL_EXPR_META_SREG, sreg);
  }
  Rule& cmp_bytes(std::uint32_t sreg, std::uint32_t op, const void* v, std::uint32_t len) {
    return add("cmp", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
      nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, v, len);
    });
  }
  Rule& cmp8(std::uint32_t sreg, std::uint32_t op, std::uint8_t v) { return cmp_bytes(sreg, op, &v, 1); }
  Rule& cmp32(std::uint32_t sreg, std::uint32_t op, std::uint32_t v) { return cmp_bytes(sreg, op, &v, 4); }
  Rule& range8(std::uint32_t sreg, std::uint8_t from, std::uint8_t to) {
    return add("range", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, sreg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, NFT_RANGE_EQ);
      nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, &from, 1);
      nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, &to, 1);
    });
  }
  Rule& payload(std::uint32_t base, std::uint32_t off, std::uint32_t len, std::uint32_t dreg) {
    return add("payload", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
      nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    });
  }
  // reg = reg & mask ^ xor_, over `len` bytes.
  Rule& bitwise_bytes(std::uint32_t reg, const void* mask, const void* xor_, std::uint32_t len) {
    return add("bitwise", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
      nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
      nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor_, len);
    });
  }
  Rule& bitwise(std::uint32_t reg, std::uint32_t mask, std::uint32_t xor_) { return bitwise_bytes(reg, &mask, &xor_, 4); }
  Rule& lookup(std::uint32_t sreg, const std::string& set, bool inverted = false, bool vmap = false) {
    return add("lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
      if (vmap) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
      if (inverted) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    });
  }
  // A data map: the value found replaces the key in the register.
  Rule& map(std::uint32_t reg, const std::string& set) {
    return add("lookup", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, reg);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, reg);
    });
  }
  Rule& ct_mark(std::uint32_t dreg) { return keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_MARK, NFTNL_EXPR_CT_DREG, dreg); }
  Rule& ct_mark_set(std::uint32_t sreg) { return keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_MARK, NFTNL_EXPR_CT_SREG, sreg); }
  Rule& imm32(std::uint32_t reg, std::uint32_t v) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
      nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &v, 4);
    });
  }
  // ct mark set 0: the scratch register is handed back clean.
  Rule& ct_mark_clear() { return imm32(kR1, 0).ct_mark_set(kR1); }
  // ct mark set ct mark | bit (another component's bits, if any, stay).
  Rule& ct_mark_or(std::uint32_t bit) { return ct_mark(kR1).bitwise(kR1, ~bit, bit).ct_mark_set(kR1); }
  Rule& ct_state_any(std::uint32_t bits) {
    keyed("ct", NFTNL_EXPR_CT_KEY, NFT_CT_STATE, NFTNL_EXPR_CT_DREG, kR1).bitwise(kR1, bits, 0);
    return cmp32(kR1, NFT_CMP_NEQ, 0);
  }
  // meta mark set meta mark & mask | value
  Rule& set_mark(std::uint32_t keep, std::uint32_t value) {
    meta(NFT_META_MARK, kR1).bitwise(kR1, keep, value);
    return meta_set(NFT_META_MARK, kR1);
  }
  Rule& verdict(int code, const char* chain = nullptr) {
    return add("immediate", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code));
      if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
    });
  }
  Rule& limit(std::uint64_t rate, std::uint32_t burst) {
    return add("limit", [&](nftnl_expr* e) {
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
      nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, burst);
      nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    });
  }
  Rule& log(std::uint16_t group, const char* prefix) {
    return add("log", [&](nftnl_expr* e) {
      nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
      nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
      nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_QTHRESHOLD, 1);  // deliver each alert at once
      nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);   // headers are enough
    });
  }
  Rule& counter() {
    return add("counter", [](nftnl_expr*) {});
  }
  // fib daddr type local: the packet is for this node itself.
  Rule& to_local() {
    add("fib", [&](nftnl_expr* e) {
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
      nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, kR1);
    });
    return cmp32(kR1, NFT_CMP_EQ, RTN_LOCAL);
  }
  // The finished rule; null when an allocation failed.
  NftRulePtr take() {
    if (failed_) r_.reset();
    return std::move(r_);
  }

 private:
  // One expression: allocated, filled by `fill`, appended (the rule owns it from then on).
  template <typename Fill>
  Rule& add(const char* name, Fill&& fill) {
    NftExprPtr e(r_ ? nftnl_expr_alloc(name) : nullptr);
    if (!e) {
      failed_ = true;
      return *this;
    }
    fill(e.get());
    nftnl_rule_add_expr(r_.get(), e.release());
    return *this;
  }
  NftRulePtr r_;
  bool failed_ = false;
};

struct Family {
  std::uint8_t nfproto;
  std::uint32_t saddr_off, daddr_off, addr_len;
  const char* v;
};
inline const Family kV4{NFPROTO_IPV4, 12, 16, 4, "4"};
inline const Family kV6{NFPROTO_IPV6, 8, 24, 16, "6"};

inline Rule& family(Rule& r, const Family& f) { return r.meta(NFT_META_NFPROTO, kR1).cmp8(kR1, NFT_CMP_EQ, f.nfproto); }
inline Rule& addr(Rule& r, const Family& f, bool src) {
  return r.payload(NFT_PAYLOAD_NETWORK_HEADER, src ? f.saddr_off : f.daddr_off, f.addr_len, kR1);
}

}  // namespace topowall::nft::detail
