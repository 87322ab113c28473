// WgGenl: the WireGuard generic netlink socket and the `wireguard` links. See wg_genl.hpp.
#include "linux/wg_genl.hpp"
#include "linux/nl_errno.hpp"

#include <net/if.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include <fmt/format.h>

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using backend::WgDeviceChange;
using backend::WgDeviceLive;


namespace {

// libnl folds errnos into its own codes; map back the ones its setup calls can return.
int errno_of(int nle) {
    int e = nlerr_to_errno(nle);
    return e ? e : EIO;
}

struct Outcome {
    int err = 0;               // errno from the kernel (or the socket); 0 = success
    bool interrupted = false;  // a dump reply carried NLM_F_DUMP_INTR: the result may be inconsistent
    std::string kernel_says;   // the extended ACK message, when the kernel gave one
};

std::string ext_ack_message(const nlmsghdr* nlh, std::size_t attrs_offset) {
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || nlh->nlmsg_len <= NLMSG_HDRLEN + attrs_offset) return {};
    auto* head = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(NLMSG_DATA(nlh)) + NLMSG_ALIGN(attrs_offset));
    int len = static_cast<int>(nlh->nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(attrs_offset));
    nlattr* msg = len > 0 ? nla_find(head, len, NLMSGERR_ATTR_MSG) : nullptr;
    if (!msg || nla_len(msg) <= 0) return {};
    return std::string(static_cast<const char*>(nla_data(msg)), strnlen(static_cast<const char*>(nla_data(msg)), nla_len(msg)));
}

// Sends one request and reads its replies until the ACK, the error or the end of the dump; every
// other reply goes to on_reply (which returns an errno to report; reading continues regardless, so
// the socket is left clean for the next request).
Outcome transact(nl_sock* sock, nl_msg* msg, const std::function<int(const nlmsghdr*)>& on_reply) {
    Outcome out;
    // Our own sequence numbers: taking libnl's (nl_complete_msg with NL_AUTO_SEQ) would advance
    // its counter without its expected-reply counter, and libnl's next own request on this socket
    // (genl_ctrl_resolve, rtnl_link_get_kernel) would fail with NLE_SEQ_MISMATCH. libnl starts at
    // the current time, so the two ranges do not meet.
    static std::atomic<uint32_t> next_seq{1};
    if (nlmsg_hdr(msg)->nlmsg_seq == NL_AUTO_SEQ) nlmsg_hdr(msg)->nlmsg_seq = next_seq++;
    nl_complete_msg(sock, msg);
    const nlmsghdr* req = nlmsg_hdr(msg);
    const uint32_t seq = req->nlmsg_seq;
    const int fd = nl_socket_get_fd(sock);
    for (;;) {
        ssize_t n = send(fd, req, req->nlmsg_len, 0);
        if (n >= 0) break;
        if (errno != EINTR) {
            out.err = errno;
            return out;
        }
    }
    std::vector<uint8_t> buf;
    bool done = false;
    while (!done) {
        ssize_t size = recv(fd, nullptr, 0, MSG_PEEK | MSG_TRUNC);
        if (size < 0) {
            if (errno == EINTR) continue;
            out.err = errno;
            break;
        }
        if (static_cast<std::size_t>(size) > buf.size()) {
            sodium_memzero(buf.data(), buf.size());
            buf.assign(static_cast<std::size_t>(size), 0);
        }
        ssize_t got = recv(fd, buf.data(), buf.size(), 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            out.err = errno;
            break;
        }
        int left = static_cast<int>(got);
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nlh, left); nlh = NLMSG_NEXT(nlh, left)) {
            if (nlh->nlmsg_seq != seq) continue;  // a late reply to an earlier request
            if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) out.interrupted = true;
            if (nlh->nlmsg_type == NLMSG_NOOP) continue;
            if (nlh->nlmsg_type == NLMSG_ERROR) {
                done = true;
                if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
                    out.err = out.err ? out.err : EBADMSG;
                    break;
                }
                const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
                if (e->error && !out.err) out.err = -e->error;
                std::size_t off = sizeof(nlmsgerr);
                if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
                out.kernel_says = ext_ack_message(nlh, off);
                break;
            }
            if (nlh->nlmsg_type == NLMSG_DONE) {
                done = true;
                // A dump that fails after it started reports its errno in NLMSG_DONE.
                if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                    int code;
                    std::memcpy(&code, NLMSG_DATA(nlh), sizeof code);
                    if (code < 0 && !out.err) out.err = -code;
                    out.kernel_says = ext_ack_message(nlh, sizeof(int));
                }
                break;
            }
            if (nlh->nlmsg_type == NLMSG_OVERRUN) {
                done = true;
                if (!out.err) out.err = EOVERFLOW;
                break;
            }
            if (int e = on_reply(nlh); e && !out.err) out.err = e;
            // Not a dump: the reply is followed by an ACK only if one was asked for.
            if (!(nlh->nlmsg_flags & NLM_F_MULTI) && !(req->nlmsg_flags & NLM_F_ACK)) done = true;
        }
        // GET_DEVICE replies carry the device's private key.
        sodium_memzero(buf.data(), buf.size());
    }
    return out;
}

Outcome transact(nl_sock* sock, nl_msg* msg) {
    return transact(sock, msg, [](const nlmsghdr*) { return 0; });
}

std::string with_kernel_text(const std::string& what, const Outcome& o) {
    return o.kernel_says.empty() ? what : what + " (kernel: " + o.kernel_says + ")";
}

Result<NlPtr<nl_sock>> open_socket(int protocol, const char* what) {
    NlPtr<nl_sock> sock(nl_socket_alloc());
    if (!sock) return errno_error(ENOMEM, std::string("open ") + what + " socket");
    if (int r = nl_connect(sock.get(), protocol); r < 0) return errno_error(errno_of(r), std::string("open ") + what + " socket");
    int one = 1;
    const int fd = nl_socket_get_fd(sock.get());
    // Extended ACKs give the kernel's reason in words; capped ACKs keep it from echoing our
    // request (which may hold a private key) back into the receive buffer.
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    return sock;
}

constexpr int kMaxDumpAttempts = 64;

bool valid_name(const std::string& ifname) { return !ifname.empty() && ifname.size() < IFNAMSIZ; }

}  // namespace

WgGenl::WgGenl() = default;
WgGenl::~WgGenl() = default;

Status WgGenl::open_genl() {
    if (genl_) return Status::ok();
    auto s = open_socket(NETLINK_GENERIC, "generic netlink");
    if (!s) return s.error();
    genl_ = std::move(*s);
    return Status::ok();
}

Status WgGenl::open_rtnl() {
    if (rtnl_) return Status::ok();
    auto s = open_socket(NETLINK_ROUTE, "rtnetlink");
    if (!s) return s.error();
    rtnl_ = std::move(*s);
    return Status::ok();
}

Result<int> WgGenl::family_id() {
    if (family_ >= 0) return family_;
    if (auto s = open_genl(); !s) return s.error();
    int id = genl_ctrl_resolve(genl_.get(), WG_GENL_NAME);
    if (id < 0) {
        if (id == -NLE_OBJ_NOTFOUND) return errno_error(ENODEV, "the kernel has no WireGuard generic netlink family (no WireGuard module)");
        return errno_error(errno_of(id), "resolve the WireGuard generic netlink family");
    }
    family_ = id;
    return family_;
}

std::vector<std::string> WgGenl::list_devices() {
    std::vector<std::string> out;
    if (!open_rtnl()) return out;
    nl_cache* raw = nullptr;
    // libnl refills the cache from scratch when the dump was interrupted.
    int err = rtnl_link_alloc_cache(rtnl_.get(), AF_UNSPEC, &raw);
    NlPtr<nl_cache> cache(raw);
    if (err < 0) return out;
    for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
        auto* link = reinterpret_cast<rtnl_link*>(o);
        const char* kind = rtnl_link_get_type(link);
        const char* name = rtnl_link_get_name(link);
        if (kind && name && std::strcmp(kind, "wireguard") == 0) out.emplace_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<WgDeviceLive> WgGenl::read_device(const std::string& ifname) {
    const std::string what = "read WireGuard device " + ifname;
    if (!valid_name(ifname)) return errno_error(ENODEV, what + ": not a valid interface name");
    auto fam = family_id();
    if (!fam) return Error{fam.error().code, what + ": " + fam.error().message};
    for (int attempt = 0; attempt < kMaxDumpAttempts; ++attempt) {
        NlMsgPtr req = build_get_device(ifname, *fam);
        if (!req) return errno_error(ENOMEM, what + ": build the request");
        WgDumpReader reader;
        std::optional<Error> parse_error;
        Outcome o = transact(genl_.get(), req.get(), [&](const nlmsghdr* nlh) {
            if (parse_error) return 0;
            if (auto s = reader.add(nlh); !s) parse_error = s.error();
            return 0;
        });
        if (o.err == EOPNOTSUPP)  // the kernel's answer for a link of another kind
            return errno_error(ENODEV, what + ": the link is not a kernel WireGuard device");
        if (o.err) return errno_error(o.err, with_kernel_text(what, o));
        if (parse_error) return Error{parse_error->code, what + ": " + parse_error->message};
        if (o.interrupted) continue;  // the device changed while it was dumped
        return reader.finish();
    }
    return errno_error(EAGAIN, fmt::format("{}: the dump was interrupted by concurrent changes {} times in a row", what, kMaxDumpAttempts));
}

Status WgGenl::set_device(const WgDeviceChange& change) {
    const std::string what = "set WireGuard device " + change.ifname;
    if (!valid_name(change.ifname)) return errno_error(ENODEV, what + ": not a valid interface name");
    auto fam = family_id();
    if (!fam) return Error{fam.error().code, what + ": " + fam.error().message};
    auto msgs = build_set_device(change, *fam);
    if (!msgs) return msgs.error();
    const std::size_t total = msgs->size();
    for (std::size_t i = 0; i < total; ++i) {
        NlMsgPtr msg = std::move((*msgs)[i]);
        Outcome o = transact(genl_.get(), msg.get());
        if (o.err == EOPNOTSUPP) return errno_error(ENODEV, what + ": the link is not a kernel WireGuard device");
        if (o.err) {
            std::string where = total > 1 ? fmt::format("{} (message {} of {})", what, i + 1, total) : what;
            return errno_error(o.err, with_kernel_text(where, o));
        }
    }
    return Status::ok();
}

Status WgGenl::create_device(const std::string& ifname) {
    const std::string what = "create WireGuard device " + ifname;
    if (!valid_name(ifname)) return errno_error(EINVAL, what + ": not a valid interface name");
    if (auto s = open_rtnl(); !s) return Error{s.error().code, what + ": " + s.error().message};
    NlPtr<rtnl_link> link(rtnl_link_alloc());
    if (!link) return errno_error(ENOMEM, what);
    rtnl_link_set_name(link.get(), ifname.c_str());
    int r = rtnl_link_set_type(link.get(), "wireguard");
    nl_msg* raw = nullptr;
    if (r >= 0) r = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &raw);
    if (r < 0) return errno_error(errno_of(r), what + ": build the request");
    NlMsgPtr msg(raw);
    Outcome o = transact(rtnl_.get(), msg.get());
    // The kernel answers EOPNOTSUPP ("Unknown device type") when it has no WireGuard module and
    // cannot load one; the code is kept so the caller can start a userspace implementation.
    if (o.err == EOPNOTSUPP)
        return errno_error(EOPNOTSUPP, with_kernel_text(what + ": the kernel cannot create wireguard links (no WireGuard module)", o));
    if (o.err) return errno_error(o.err, with_kernel_text(what, o));
    return Status::ok();
}

Status WgGenl::delete_device(const std::string& ifname) {
    const std::string what = "delete WireGuard device " + ifname;
    if (!valid_name(ifname)) return errno_error(ENODEV, what + ": not a valid interface name");
    if (auto s = open_rtnl(); !s) return Error{s.error().code, what + ": " + s.error().message};
    rtnl_link* raw_found = nullptr;
    int got = rtnl_link_get_kernel(rtnl_.get(), 0, ifname.c_str(), &raw_found);
    NlPtr<rtnl_link> found(raw_found);
    if (got < 0) {
        int e = errno_of(got);
        return errno_error(e == ENOENT ? ENODEV : e, what);
    }
    const char* kind = rtnl_link_get_type(found.get());
    const std::string kind_s = kind ? kind : "";
    const int ifindex = rtnl_link_get_ifindex(found.get());
    // Only our kind of link: a same-named link of another kind is not ours to remove.
    if (kind_s != "wireguard")
        return errno_error(ENODEV,
                           fmt::format("{}: the link is {}, not wireguard", what, kind_s.empty() ? "of no kind" : "a " + kind_s + " link"));
    NlPtr<rtnl_link> link(rtnl_link_alloc());
    if (!link) return errno_error(ENOMEM, what);
    // By index, so a link renamed or replaced since the check above is not hit by name.
    rtnl_link_set_ifindex(link.get(), ifindex);
    nl_msg* raw = nullptr;
    int r = rtnl_link_build_delete_request(link.get(), &raw);
    if (r < 0) return errno_error(errno_of(r), what + ": build the request");
    NlMsgPtr msg(raw);
    Outcome o = transact(rtnl_.get(), msg.get());
    if (o.err) return errno_error(o.err, with_kernel_text(what, o));
    return Status::ok();
}

}  // namespace wgf::linux_
