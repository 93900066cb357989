#include "conntrack/ct_filter.hpp"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/handles.hpp"

namespace topowall::conntrack {

std::vector<sock_filter> event_filter(std::uint32_t bit) {
  // SKF_AD_NLATTR finds an attribute as nla_find() does: A = where the attributes start, X = the type;
  // A becomes its offset in the message, 0 when absent (the kernel leaves out a zero mark). Classic BPF
  // loads are big-endian, as CTA_MARK is. conntrack-tools' filter (libnetfilter_conntrack) does the same.
  constexpr std::uint32_t kAttrs = NLMSG_LENGTH(sizeof(nfgenmsg));
  constexpr std::uint32_t kPayload = sizeof(nlattr);
  constexpr auto kFindAttr = static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_NLATTR);  // a negative offset: an extension
  return {
      BPF_STMT(BPF_LD | BPF_IMM, kAttrs),                              // 0
      BPF_STMT(BPF_LDX | BPF_IMM, CTA_MARK),                           // 1
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kFindAttr),                  // 2: A = offset of CTA_MARK, or 0
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 0),                    // 3: no mark: drop (8)
      BPF_STMT(BPF_MISC | BPF_TAX, 0),                                 // 4
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, kPayload),                    // 5: A = the mark
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, bit, 0, 1),                 // 6: bit set: keep (7), else drop (8)
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),                           // 7: the whole message
      BPF_STMT(BPF_RET | BPF_K, 0),                                    // 8: dropped
  };
}

Status attach_event_filter(int fd, std::uint32_t bit) {
  auto prog = event_filter(bit);
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) < 0)
    return netlink_error("attach the conntrack event filter (SO_ATTACH_FILTER)", errno);
  return ok_status();
}

}  // namespace topowall::conntrack
