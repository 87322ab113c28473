// The deleters of NlPtr: each object goes back through its own library's free function.
#include "linux/nl_ptr.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sodium.h>

namespace wgf::linux_ {

void NlFree::operator()(mnl_socket* p) const noexcept { mnl_socket_close(p); }
void NlFree::operator()(nl_addr* p) const noexcept { nl_addr_put(p); }
void NlFree::operator()(nl_cache* p) const noexcept { nl_cache_free(p); }
void NlFree::operator()(nl_cb* p) const noexcept { nl_cb_put(p); }
void NlFree::operator()(nl_msg* p) const noexcept {
    // A WireGuard message may carry a private key: the whole buffer is wiped first.
    sodium_memzero(nlmsg_hdr(p), nlmsg_get_max_size(p));
    nlmsg_free(p);
}
void NlFree::operator()(nl_sock* p) const noexcept { nl_socket_free(p); }
void NlFree::operator()(nftnl_batch* p) const noexcept { nftnl_batch_free(p); }
void NlFree::operator()(nftnl_chain* p) const noexcept { nftnl_chain_free(p); }
void NlFree::operator()(nftnl_expr* p) const noexcept { nftnl_expr_free(p); }
void NlFree::operator()(nftnl_expr_iter* p) const noexcept { nftnl_expr_iter_destroy(p); }
void NlFree::operator()(nftnl_gen* p) const noexcept { nftnl_gen_free(p); }
void NlFree::operator()(nftnl_rule* p) const noexcept { nftnl_rule_free(p); }
void NlFree::operator()(nftnl_set* p) const noexcept { nftnl_set_free(p); }
void NlFree::operator()(nftnl_table* p) const noexcept { nftnl_table_free(p); }
void NlFree::operator()(nftnl_udata_buf* p) const noexcept { nftnl_udata_buf_free(p); }
void NlFree::operator()(rtnl_addr* p) const noexcept { rtnl_addr_put(p); }
void NlFree::operator()(rtnl_link* p) const noexcept { rtnl_link_put(p); }
void NlFree::operator()(rtnl_route* p) const noexcept { rtnl_route_put(p); }

}  // namespace wgf::linux_
