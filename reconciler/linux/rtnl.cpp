// rtnetlink through libnl-route-3. See rtnl.hpp for the invariants.
#include "linux/rtnl.hpp"
#include "linux/nl_errno.hpp"
#include "linux/nl_ptr.hpp"

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace wgf::linux_ {

using backend::Error;
using backend::Result;
using backend::Status;
using model::IpAddr;
using model::Prefix;

namespace {

// Called by libnl for every NLMSG_ERROR with a non-zero error; NL_STOP makes libnl return its
// own code as usual, while the exact errno is kept for the message.
int on_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
    *static_cast<int*>(arg) = -e->error;
    return NL_STOP;
}

IpAddr to_ip(nl_addr* a) {
    IpAddr ip;
    if (!a) return ip;
    int fam = nl_addr_get_family(a);
    size_t want = fam == AF_INET ? 4 : fam == AF_INET6 ? 16 : 0;
    if (want == 0) return ip;
    ip.family = fam == AF_INET ? 4 : 6;
    // A default route's destination comes back as a zero-length address.
    size_t len = std::min<size_t>(nl_addr_get_len(a), want);
    if (len) std::memcpy(ip.bytes.data(), nl_addr_get_binary_addr(a), len);
    return ip;
}

NlPtr<nl_addr> to_nl(const Prefix& p) {
    int fam = p.addr.is_v4() ? AF_INET : AF_INET6;
    NlPtr<nl_addr> a(nl_addr_build(fam, p.addr.bytes.data(), p.addr.is_v4() ? 4 : 16));
    if (a) nl_addr_set_prefixlen(a.get(), p.len);
    return a;
}

bool valid(const Prefix& p) { return (p.addr.is_v4() || p.addr.is_v6()) && p.len <= p.addr.bits(); }

}  // namespace

Rtnl::Rtnl() {
    sock_.reset(nl_socket_alloc());
    if (!sock_) {
        open_error_ = -NLE_NOMEM;
        return;
    }
    nl_socket_modify_err_cb(sock_.get(), NL_CB_CUSTOM, on_error, &kernel_errno_);
    if (int err = nl_connect(sock_.get(), NETLINK_ROUTE); err < 0) {
        open_error_ = err;
        sock_.reset();
    }
}

Rtnl::~Rtnl() = default;

Status Rtnl::status() const {
    if (open_error_) return nl_error(open_error_, "open rtnetlink socket");
    return Status::ok();
}

Error Rtnl::nl_error(int nlerr, const std::string& what) const {
    if (kernel_errno_) return backend::errno_error(kernel_errno_, what);
    if (int e = nlerr_to_errno(nlerr)) return backend::errno_error(e, what);
    return Error{0, what + ": " + nl_geterror(nlerr)};
}

// The live link by name; null when there is none. rtnl_link_get_kernel installs its own error
// handler, so the kernel's ENODEV reaches us only as libnl's code: NLE_NODEV, or
// NLE_OBJ_NOTFOUND from libnl versions that fold ENODEV into it.
Result<std::shared_ptr<rtnl_link>> Rtnl::get_link(const std::string& name, const std::string& what) {
    if (!sock_) return status().error();
    // The kernel rejects such names with EINVAL; no link can have them.
    if (name.empty() || name.size() >= IFNAMSIZ) return std::shared_ptr<rtnl_link>{};
    kernel_errno_ = 0;
    rtnl_link* raw = nullptr;
    int err = rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw);
    std::shared_ptr<rtnl_link> link(raw, NlFree{});
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND || kernel_errno_ == ENODEV) return std::shared_ptr<rtnl_link>{};
    if (err < 0) return nl_error(err, what);
    return link;
}

Result<int> Rtnl::ifindex(const std::string& name, const std::string& what) {
    auto link = get_link(name, what);
    if (!link) return link.error();
    if (!*link) return backend::errno_error(ENODEV, what);
    return rtnl_link_get_ifindex(link->get());
}

Result<std::optional<backend::LinkLive>> Rtnl::read_link(const std::string& name) {
    std::string what = "read link " + name;
    auto got = get_link(name, what);
    if (!got) return got.error();
    rtnl_link* link = got->get();
    if (!link) return std::optional<backend::LinkLive>{};
    backend::LinkLive live;
    live.name = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : name;
    live.ifindex = rtnl_link_get_ifindex(link);
    // IFLA_INFO_KIND: "wireguard" for the kernel module, "tun" for wireguard-go; physical devices
    // have none.
    if (const char* kind = rtnl_link_get_type(link)) live.kind = kind;
    live.mtu = rtnl_link_get_mtu(link);
    live.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
    return std::optional<backend::LinkLive>{std::move(live)};
}

Result<model::AddressSet> Rtnl::read_addresses(const std::string& name) {
    std::string what = "read addresses dev " + name;
    auto idx = ifindex(name, what);
    if (!idx) return idx.error();
    kernel_errno_ = 0;
    nl_cache* raw = nullptr;
    int err = rtnl_addr_alloc_cache(sock_.get(), &raw);
    NlPtr<nl_cache> cache(raw);
    if (err < 0) return nl_error(err, what);

    std::vector<Prefix> out;
    for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
        auto* a = reinterpret_cast<rtnl_addr*>(o);
        if (rtnl_addr_get_ifindex(a) != *idx) continue;
        int fam = rtnl_addr_get_family(a);
        if (fam != AF_INET && fam != AF_INET6) continue;
        // Link-local (fe80::/10) and host scope are the kernel's; ULAs are global scope.
        if (rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE) continue;
        unsigned flags = rtnl_addr_get_flags(a);
        // SLAAC and privacy addresses come with lifetimes (no IFA_F_PERMANENT); what an
        // administrator or wg-fleet adds is permanent. IPv4 has no kernel-made global addresses,
        // and a DHCP lease with a lifetime is still a configured address to report.
        if (fam == AF_INET6 && (!(flags & IFA_F_PERMANENT) || (flags & IFA_F_TEMPORARY))) continue;
        nl_addr* local = rtnl_addr_get_local(a);
        if (!local) continue;
        out.push_back(Prefix{to_ip(local), static_cast<uint8_t>(rtnl_addr_get_prefixlen(a))});
    }
    return model::AddressSet(std::move(out));
}

Result<std::set<model::Route>> Rtnl::read_routes(const std::set<std::string>& devices) {
    std::string what = "read routes";
    if (!sock_) return status().error();
    if (devices.empty()) return std::set<model::Route>{};
    kernel_errno_ = 0;
    nl_cache* raw_links = nullptr;
    int err = rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &raw_links);
    NlPtr<nl_cache> links(raw_links);
    if (err < 0) return nl_error(err, what);
    nl_cache* raw_routes = nullptr;
    err = rtnl_route_alloc_cache(sock_.get(), AF_UNSPEC, 0, &raw_routes);
    NlPtr<nl_cache> routes(raw_routes);
    if (err < 0) return nl_error(err, what);

    std::set<model::Route> out;
    for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_route*>(o);
        if (rtnl_route_get_protocol(r) != backend::kRouteProtocol) continue;
        if (const uint32_t t = rtnl_route_get_table(r); t != RT_TABLE_MAIN && t != model::kExitTable) continue;
        int fam = rtnl_route_get_family(r);
        if (fam != AF_INET && fam != AF_INET6) continue;
        nl_addr* nl_dst = rtnl_route_get_dst(r);
        IpAddr dst = to_ip(nl_dst);
        if (dst.family == 0) dst.family = fam == AF_INET ? 4 : 6;
        auto len = static_cast<uint8_t>(nl_dst ? nl_addr_get_prefixlen(nl_dst) : 0);
        Prefix p = Prefix{dst, len}.masked();
        std::optional<IpAddr> src;
        if (nl_addr* ps = rtnl_route_get_pref_src(r); ps && nl_addr_get_len(ps)) src = to_ip(ps);
        // One entry per device: a multipath route of ours (we add none) still reads back whole.
        // Routes without a device (blackhole, unreachable) are not something wg-fleet makes.
        int n = rtnl_route_get_nnexthops(r);
        for (int i = 0; i < n; ++i) {
            int oif = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, i));
            if (oif <= 0) continue;
            char name[IFNAMSIZ + 1] = {};
            if (!rtnl_link_i2name(links.get(), oif, name, sizeof name)) continue;
            if (!devices.count(name)) continue;
            out.insert(model::Route{.dst = p, .dev = name, .src = src, .table = rtnl_route_get_table(r)});
        }
    }
    return out;
}

Status Rtnl::link_change(const std::string& name, std::optional<uint32_t> mtu, std::optional<bool> up, const std::string& what) {
    // The live link is the base of the change so that ifi_flags keeps every flag but the one changed.
    auto orig = get_link(name, what);
    if (!orig) return orig.error();
    if (!*orig) return backend::errno_error(ENODEV, what);
    NlPtr<rtnl_link> change(rtnl_link_alloc());
    if (!change) return backend::errno_error(ENOMEM, what);
    if (mtu) rtnl_link_set_mtu(change.get(), *mtu);
    if (up) {
        if (*up) rtnl_link_set_flags(change.get(), IFF_UP);
        else rtnl_link_unset_flags(change.get(), IFF_UP);
    }
    kernel_errno_ = 0;
    int err = rtnl_link_change(sock_.get(), orig->get(), change.get(), 0);
    if (err < 0) return nl_error(err, what);
    return Status::ok();
}

Status Rtnl::delete_link(const std::string& name) {
    const std::string what = "delete link " + name;
    auto found = get_link(name, what);
    if (!found) return found.error();
    if (!*found) return backend::errno_error(ENODEV, what);
    NlPtr<rtnl_link> link(rtnl_link_alloc());
    if (!link) return backend::errno_error(ENOMEM, what);
    // By index, so a link renamed since the lookup is not hit by name.
    rtnl_link_set_ifindex(link.get(), rtnl_link_get_ifindex(found->get()));
    kernel_errno_ = 0;
    int err = rtnl_link_delete(sock_.get(), link.get());
    if (err < 0) return nl_error(err, what);
    return Status::ok();
}

Status Rtnl::set_mtu(const std::string& name, uint32_t mtu) {
    return link_change(name, mtu, std::nullopt, fmt::format("set mtu {} dev {}", mtu, name));
}

Status Rtnl::set_up(const std::string& name, bool up) {
    return link_change(name, std::nullopt, up, fmt::format("set link {} {}", name, up ? "up" : "down"));
}

Status Rtnl::addr_change(int ifindex, const Prefix& addr, bool add, const std::string& what) {
    if (!valid(addr)) return backend::errno_error(EINVAL, what);
    NlPtr<rtnl_addr> a(rtnl_addr_alloc());
    NlPtr<nl_addr> local = to_nl(addr);
    if (!a || !local) return backend::errno_error(ENOMEM, what);
    rtnl_addr_set_ifindex(a.get(), ifindex);
    rtnl_addr_set_family(a.get(), addr.addr.is_v4() ? AF_INET : AF_INET6);
    if (int err = rtnl_addr_set_local(a.get(), local.get()); err < 0) return nl_error(err, what);
    rtnl_addr_set_prefixlen(a.get(), addr.len);
    kernel_errno_ = 0;
    int err;
    if (add) {
        // Without NODAD an IPv6 address stays "tentative" for about a second and cannot be bound
        // to. IFA_F_NOPREFIXROUTE stays off: the connected prefix route is what reaches the mesh.
        if (addr.addr.is_v6()) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
        err = rtnl_addr_add(sock_.get(), a.get(), NLM_F_EXCL);
    } else {
        err = rtnl_addr_delete(sock_.get(), a.get(), 0);
    }
    if (err < 0) return nl_error(err, what);
    return Status::ok();
}

Status Rtnl::add_address(const std::string& name, const Prefix& addr) {
    std::string what = fmt::format("add address {} dev {}", addr, name);
    auto idx = ifindex(name, what);
    if (!idx) return idx.error();
    return addr_change(*idx, addr, true, what);
}

Status Rtnl::del_address(const std::string& name, const Prefix& addr) {
    std::string what = fmt::format("del address {} dev {}", addr, name);
    auto idx = ifindex(name, what);
    if (!idx) return idx.error();
    return addr_change(*idx, addr, false, what);
}

Status Rtnl::route_change(const model::Route& route, bool add) {
    Prefix dst = route.dst.masked();
    std::string what = fmt::format("{} route {} dev {}{}{}", add ? "add" : "del", dst, route.dev,
                                   route.src ? " src " + route.src->str() : "",
                                   route.table == model::kMainTable ? "" : fmt::format(" table {}", route.table));
    if (!valid(route.dst) || (route.src && route.src->family != route.dst.addr.family)) return backend::errno_error(EINVAL, what);
    auto idx = ifindex(route.dev, what);
    if (!idx) return idx.error();

    NlPtr<rtnl_route> r(rtnl_route_alloc());
    NlPtr<nl_addr> nl_dst = to_nl(dst);
    if (!r || !nl_dst) return backend::errno_error(ENOMEM, what);
    int fam = dst.addr.is_v4() ? AF_INET : AF_INET6;
    rtnl_route_set_family(r.get(), static_cast<uint8_t>(fam));
    if (int err = rtnl_route_set_dst(r.get(), nl_dst.get()); err < 0) return nl_error(err, what);
    rtnl_route_set_table(r.get(), route.table);
    if (route.src) {
        NlPtr<nl_addr> src(nl_addr_build(fam, route.src->bytes.data(), route.src->is_v4() ? 4 : 16));
        if (!src) return backend::errno_error(ENOMEM, what);
        if (int err = rtnl_route_set_pref_src(r.get(), src.get()); err < 0) return nl_error(err, what);
    }
    // On delete the kernel matches the protocol (IPv4 fib_table_delete, IPv6 ip6_route_del), so
    // a foreign route with the same destination and device is refused with ESRCH, not removed.
    rtnl_route_set_protocol(r.get(), backend::kRouteProtocol);
    rtnl_route_set_scope(r.get(), RT_SCOPE_LINK);
    rtnl_route_set_type(r.get(), RTN_UNICAST);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (!nh) return backend::errno_error(ENOMEM, what);
    rtnl_route_nh_set_ifindex(nh, *idx);
    rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here
    kernel_errno_ = 0;
    int err = add ? rtnl_route_add(sock_.get(), r.get(), NLM_F_EXCL) : rtnl_route_delete(sock_.get(), r.get(), 0);
    if (err < 0) return nl_error(err, what);
    return Status::ok();
}

Status Rtnl::add_route(const model::Route& route) { return route_change(route, true); }

namespace {

bool our_priority(uint32_t p) { return p == model::kExitSuppressPriority || p == model::kExitMarkPriority; }

// One RTM_NEWRULE of a dump: ours when it carries our protocol at one of our priorities.
int on_rule(nl_msg* msg, void* arg) {
    auto* out = static_cast<std::set<model::PolicyRule>*>(arg);
    nlmsghdr* nlh = nlmsg_hdr(msg);
    if (nlh->nlmsg_type != RTM_NEWRULE) return NL_OK;
    nlattr* tb[FRA_MAX + 1] = {};
    if (nlmsg_parse(nlh, sizeof(fib_rule_hdr), tb, FRA_MAX, nullptr) < 0) return NL_OK;
    const auto* h = static_cast<const fib_rule_hdr*>(nlmsg_data(nlh));
    if (h->family != AF_INET && h->family != AF_INET6) return NL_OK;
    if (!tb[FRA_PROTOCOL] || nla_get_u8(tb[FRA_PROTOCOL]) != backend::kRouteProtocol) return NL_OK;
    const uint32_t prio = tb[FRA_PRIORITY] ? nla_get_u32(tb[FRA_PRIORITY]) : 0;
    if (!our_priority(prio)) return NL_OK;
    model::PolicyRule r{.family = static_cast<uint8_t>(h->family == AF_INET ? 4 : 6),
                        .priority = prio,
                        .table = tb[FRA_TABLE] ? nla_get_u32(tb[FRA_TABLE]) : h->table,
                        .fwmark = tb[FRA_FWMARK] ? nla_get_u32(tb[FRA_FWMARK]) : 0,
                        .invert = (h->flags & FIB_RULE_INVERT) != 0};
    // The kernel sends it only when set; "none" is (u32)-1.
    if (tb[FRA_SUPPRESS_PREFIXLEN]) {
        const uint32_t s = nla_get_u32(tb[FRA_SUPPRESS_PREFIXLEN]);
        if (s <= 128) r.suppress_prefixlength = static_cast<uint8_t>(s);
    }
    out->insert(r);
    return NL_OK;
}

}  // namespace

Result<std::set<model::PolicyRule>> Rtnl::read_rules() {
    const std::string what = "read rules";
    if (!sock_) return status().error();
    kernel_errno_ = 0;
    fib_rule_hdr hdr{};
    hdr.family = AF_UNSPEC;
    if (int err = nl_send_simple(sock_.get(), RTM_GETRULE, NLM_F_DUMP, &hdr, sizeof hdr); err < 0) return nl_error(err, what);
    // nl_socket_get_cb takes a reference of its own: without its put, the socket's callbacks
    // outlive the socket.
    NlPtr<nl_cb> sock_cb(nl_socket_get_cb(sock_.get()));
    NlPtr<nl_cb> cb(sock_cb ? nl_cb_clone(sock_cb.get()) : nullptr);
    if (!cb) return backend::errno_error(ENOMEM, what);
    std::set<model::PolicyRule> out;
    nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_rule, &out);
    if (int err = nl_recvmsgs(sock_.get(), cb.get()); err < 0) return nl_error(err, what);
    return out;
}

Status Rtnl::rule_change(const model::PolicyRule& rule, bool add) {
    const std::string what = fmt::format(
        "{} rule ipv{} priority {}{} table {}{}", add ? "add" : "del", rule.family, rule.priority,
        rule.fwmark ? fmt::format("{} fwmark {:#x}", rule.invert ? " not" : "", rule.fwmark) : "", rule.table,
        rule.suppress_prefixlength ? fmt::format(" suppress_prefixlength {}", *rule.suppress_prefixlength) : "");
    if (!sock_) return status().error();
    if (rule.family != 4 && rule.family != 6) return backend::errno_error(EINVAL, what);
    nl_msg* raw = nlmsg_alloc_simple(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
    if (!raw) return backend::errno_error(ENOMEM, what);
    NlPtr<nl_msg> msg(raw);
    fib_rule_hdr h{};
    h.family = rule.family == 4 ? AF_INET : AF_INET6;
    h.action = FR_ACT_TO_TBL;
    h.table = rule.table < 256 ? static_cast<uint8_t>(rule.table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
    h.flags = rule.invert ? FIB_RULE_INVERT : 0;
    bool fit = nlmsg_append(msg.get(), &h, sizeof h, NLMSG_ALIGNTO) >= 0 && nla_put_u32(msg.get(), FRA_PRIORITY, rule.priority) >= 0 &&
               nla_put_u32(msg.get(), FRA_TABLE, rule.table) >= 0 && nla_put_u8(msg.get(), FRA_PROTOCOL, backend::kRouteProtocol) >= 0;
    if (rule.fwmark) fit = fit && nla_put_u32(msg.get(), FRA_FWMARK, rule.fwmark) >= 0;
    if (rule.suppress_prefixlength) fit = fit && nla_put_u32(msg.get(), FRA_SUPPRESS_PREFIXLEN, *rule.suppress_prefixlength) >= 0;
    if (!fit) return backend::errno_error(ENOMEM, what);
    kernel_errno_ = 0;
    // nl_send_sync frees the message: it leaves our hands here.
    if (int err = nl_send_sync(sock_.get(), msg.release()); err < 0) return nl_error(err, what);
    return Status::ok();
}

Status Rtnl::add_rule(const model::PolicyRule& rule) { return rule_change(rule, true); }

Status Rtnl::del_rule(const model::PolicyRule& rule) { return rule_change(rule, false); }

Status Rtnl::del_route(const model::Route& route) { return route_change(route, false); }

}  // namespace wgf::linux_
