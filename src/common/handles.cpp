#include "common/handles.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace topowall {

void CFree::operator()(mnl_socket* p) const { mnl_socket_close(p); }
void CFree::operator()(nftnl_batch* p) const { nftnl_batch_free(p); }
void CFree::operator()(nftnl_table* p) const { nftnl_table_free(p); }
void CFree::operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
void CFree::operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
void CFree::operator()(nftnl_expr* p) const { nftnl_expr_free(p); }
void CFree::operator()(nftnl_set* p) const { nftnl_set_free(p); }
void CFree::operator()(nftnl_set_elem* p) const { nftnl_set_elem_free(p); }
void CFree::operator()(nftnl_set_elems_iter* p) const { nftnl_set_elems_iter_destroy(p); }
void CFree::operator()(nftnl_udata_buf* p) const { nftnl_udata_buf_free(p); }
void CFree::operator()(nl_sock* p) const { nl_socket_free(p); }
void CFree::operator()(nl_cache* p) const { nl_cache_free(p); }
void CFree::operator()(nl_msg* p) const { nlmsg_free(p); }
void CFree::operator()(rtnl_link* p) const { rtnl_link_put(p); }
void CFree::operator()(DIR* p) const { closedir(p); }
void CFree::operator()(std::FILE* p) const { std::fclose(p); }

Error alloc_error(std::string_view what) {
  return Error{"out of memory allocating " + std::string(what) +
                   " (free memory on the node; the agent retries ruleset changes, a start-up needs a restart)",
               ENOMEM};
}

Error netlink_error(std::string_view what, int err) {
  std::string m = std::string(what) + ": " + std::strerror(err);
  if (err == EPERM) m += " (needs CAP_NET_ADMIN: run as root)";
  return Error{m, err};
}

Result<MnlSocketPtr> open_mnl_socket(int bus, unsigned groups, std::string_view what) {
  MnlSocketPtr sock(mnl_socket_open(bus));
  if (!sock) return netlink_error("open " + std::string(what) + " socket", errno);
  if (mnl_socket_bind(sock.get(), groups, MNL_SOCKET_AUTOPID) < 0)
    return netlink_error("bind " + std::string(what) + " socket", errno);
  return sock;
}

}  // namespace topowall
