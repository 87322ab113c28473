// The one owner type for netlink and libnftnl objects: NlPtr<T> is a unique_ptr whose deleter
// calls the library's own free function for T (nl_msg, nl_sock, rtnl_link, mnl_socket,
// nftnl_rule, ...); an nl_msg's buffer is wiped before it is freed, as it may hold a private
// key. Only forward declarations here, so a header can hold an NlPtr without
// pulling in libnl or libnftnl; the deleters live in nl_ptr.cpp. For a shared owner,
// std::shared_ptr<T>(raw, NlFree{}).
#pragma once

#include <memory>

struct mnl_socket;
struct nl_addr;
struct nl_cache;
struct nl_cb;
struct nl_msg;
struct nl_sock;
struct nftnl_batch;
struct nftnl_chain;
struct nftnl_expr;
struct nftnl_expr_iter;
struct nftnl_gen;
struct nftnl_rule;
struct nftnl_set;
struct nftnl_table;
struct nftnl_udata_buf;
struct rtnl_addr;
struct rtnl_link;
struct rtnl_route;

namespace wgf::linux_ {

struct NlFree {
    void operator()(mnl_socket* p) const noexcept;
    void operator()(nl_addr* p) const noexcept;
    void operator()(nl_cache* p) const noexcept;
    void operator()(nl_cb* p) const noexcept;
    void operator()(nl_msg* p) const noexcept;
    void operator()(nl_sock* p) const noexcept;
    void operator()(nftnl_batch* p) const noexcept;
    void operator()(nftnl_chain* p) const noexcept;
    void operator()(nftnl_expr* p) const noexcept;
    void operator()(nftnl_expr_iter* p) const noexcept;
    void operator()(nftnl_gen* p) const noexcept;
    void operator()(nftnl_rule* p) const noexcept;
    void operator()(nftnl_set* p) const noexcept;
    void operator()(nftnl_table* p) const noexcept;
    void operator()(nftnl_udata_buf* p) const noexcept;
    void operator()(rtnl_addr* p) const noexcept;
    void operator()(rtnl_link* p) const noexcept;
    void operator()(rtnl_route* p) const noexcept;
};

template <class T>
using NlPtr = std::unique_ptr<T, NlFree>;

}  // namespace wgf::linux_
