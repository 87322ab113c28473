// The WireGuard generic netlink messages: SET building and GET dump reading. Pure; see
// wg_genl_msg.hpp for the invariants.
#include "linux/wg_genl_msg.hpp"

#include <arpa/inet.h>
#include <linux/time_types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using backend::WgDeviceChange;
using backend::WgDeviceLive;
using backend::WgPeerChange;

// ---- policies ------------------------------------------------------------------------------

namespace {

struct Policies {
    nla_policy device[WGDEVICE_A_MAX + 1]{};
    nla_policy peer[WGPEER_A_MAX + 1]{};
    nla_policy allowedip[WGALLOWEDIP_A_MAX + 1]{};

    static nla_policy exact(uint16_t len) { return nla_policy{NLA_UNSPEC, len, len}; }
    static nla_policy of(uint16_t type) { return nla_policy{type, 0, 0}; }

    Policies() {
        device[WGDEVICE_A_IFINDEX] = of(NLA_U32);
        device[WGDEVICE_A_IFNAME] = nla_policy{NLA_STRING, 0, IFNAMSIZ};
        device[WGDEVICE_A_PRIVATE_KEY] = exact(WG_KEY_LEN);
        device[WGDEVICE_A_PUBLIC_KEY] = exact(WG_KEY_LEN);
        device[WGDEVICE_A_FLAGS] = of(NLA_U32);
        device[WGDEVICE_A_LISTEN_PORT] = of(NLA_U16);
        device[WGDEVICE_A_FWMARK] = of(NLA_U32);
        device[WGDEVICE_A_PEERS] = of(NLA_NESTED);

        peer[WGPEER_A_PUBLIC_KEY] = exact(WG_KEY_LEN);
        peer[WGPEER_A_PRESHARED_KEY] = exact(WG_KEY_LEN);
        peer[WGPEER_A_FLAGS] = of(NLA_U32);
        peer[WGPEER_A_ENDPOINT] = nla_policy{NLA_UNSPEC, sizeof(sockaddr_in), sizeof(sockaddr_in6)};
        peer[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL] = of(NLA_U16);
        peer[WGPEER_A_LAST_HANDSHAKE_TIME] = exact(sizeof(__kernel_timespec));
        peer[WGPEER_A_RX_BYTES] = of(NLA_U64);
        peer[WGPEER_A_TX_BYTES] = of(NLA_U64);
        peer[WGPEER_A_ALLOWEDIPS] = of(NLA_NESTED);
        peer[WGPEER_A_PROTOCOL_VERSION] = of(NLA_U32);

        allowedip[WGALLOWEDIP_A_FAMILY] = of(NLA_U16);
        allowedip[WGALLOWEDIP_A_IPADDR] = nla_policy{NLA_UNSPEC, sizeof(in_addr), sizeof(in6_addr)};
        allowedip[WGALLOWEDIP_A_CIDR_MASK] = of(NLA_U8);
    }
};

const Policies& policies() {
    static const Policies p;
    return p;
}

}  // namespace

const nla_policy* wg_device_policy() { return policies().device; }
const nla_policy* wg_peer_policy() { return policies().peer; }
const nla_policy* wg_allowedip_policy() { return policies().allowedip; }

// ---- building SET_DEVICE ---------------------------------------------------------------------

namespace {

struct WireEndpoint {
    std::array<uint8_t, sizeof(sockaddr_in6)> bytes{};
    std::size_t len = 0;
};

std::string peer_label(const model::Key& k) { return "peer " + k.short_str(); }

Result<WireEndpoint> to_wire(const model::Endpoint& ep, const model::Key& peer, const std::string& ifname) {
    auto addr = model::IpAddr::parse(ep.host);
    if (!addr || ep.port == 0)
        return errno_error(EINVAL, fmt::format("set WireGuard device {}: {}: endpoint '{}' must be an IP literal with a port", ifname,
                                               peer_label(peer), ep.str()));
    WireEndpoint w;
    if (addr->is_v4()) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(ep.port);
        std::memcpy(&sin.sin_addr, addr->bytes.data(), 4);
        std::memcpy(w.bytes.data(), &sin, sizeof sin);
        w.len = sizeof sin;
    } else {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(ep.port);
        std::memcpy(&sin6.sin6_addr, addr->bytes.data(), 16);
        std::memcpy(w.bytes.data(), &sin6, sizeof sin6);
        w.len = sizeof sin6;
    }
    return w;
}

// The kernel parses peers and allowed IPs with nla_parse_nested(), which rejects a nest without
// NLA_F_NESTED ("NLA_F_NESTED is missing"); older libnl versions do not set it themselves.
nlattr* nest_start(nl_msg* msg, int type) { return nla_nest_start(msg, NLA_F_NESTED | type); }

class SetBuilder {
public:
    SetBuilder(const WgDeviceChange& change, int family, std::size_t limit) : change_(change), family_(family), limit_(limit) {}

    Result<std::vector<NlMsgPtr>> build() {
        std::vector<std::optional<WireEndpoint>> endpoints;
        for (const auto& pc : change_.peers) {
            for (const auto& p : pc.allowed_ips)
                if ((!p.addr.is_v4() && !p.addr.is_v6()) || p.len > p.addr.bits())
                    return errno_error(EINVAL, fmt::format("set WireGuard device {}: {}: allowed IP '{}' is not an IPv4 or IPv6 prefix",
                                                           change_.ifname, peer_label(pc.public_key), p.str()));
            std::optional<WireEndpoint> ep;
            if (pc.endpoint && !pc.remove) {
                auto w = to_wire(*pc.endpoint, pc.public_key, change_.ifname);
                if (!w) return w.error();
                ep = *w;
            }
            endpoints.push_back(ep);
        }
        if (auto s = start_message(); !s) return s.error();
        for (std::size_t i = 0; i < change_.peers.size(); ++i)
            if (auto s = add_peer(change_.peers[i], endpoints[i]); !s) return s.error();
        finish_message();
        return std::move(out_);
    }

private:
    Error too_small(const std::string& what) const {
        return errno_error(EMSGSIZE, fmt::format("set WireGuard device {}: {} does not fit in a netlink message of {} bytes",
                                                 change_.ifname, what, limit_));
    }

    Status start_message() {
        msg_.reset(nlmsg_alloc_size(limit_));
        if (!msg_) return errno_error(ENOMEM, "set WireGuard device " + change_.ifname + ": allocate a netlink message");
        peers_ = nullptr;
        has_payload_ = false;
        nl_msg* m = msg_.get();
        if (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, family_, 0, NLM_F_REQUEST | NLM_F_ACK, WG_CMD_SET_DEVICE, WG_GENL_VERSION) ||
            nla_put_string(m, WGDEVICE_A_IFNAME, change_.ifname.c_str()) < 0)
            return too_small("the message header");
        if (!out_.empty()) return Status::ok();
        // Device-level fields travel once, in the first message; a later message only names the
        // device so the kernel finds it again.
        bool fit = true;
        if (change_.private_key) fit = fit && nla_put(m, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, change_.private_key->raw().data()) >= 0;
        if (change_.listen_port) fit = fit && nla_put_u16(m, WGDEVICE_A_LISTEN_PORT, *change_.listen_port) >= 0;
        if (change_.fwmark) fit = fit && nla_put_u32(m, WGDEVICE_A_FWMARK, *change_.fwmark) >= 0;
        if (change_.replace_peers) fit = fit && nla_put_u32(m, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS) >= 0;
        if (!fit) return too_small("the device attributes");
        has_payload_ = change_.private_key || change_.listen_port || change_.fwmark || change_.replace_peers;
        return Status::ok();
    }

    void finish_message() {
        if (peers_) nla_nest_end(msg_.get(), peers_);
        peers_ = nullptr;
        out_.push_back(std::move(msg_));
    }

    // Opens a peer's nest with its header attributes; nullptr (nothing added) when it does not fit.
    nlattr* open_peer(const WgPeerChange& pc, bool first_chunk, const std::optional<WireEndpoint>& ep) {
        nl_msg* m = msg_.get();
        if (!peers_ && !(peers_ = nest_start(m, WGDEVICE_A_PEERS))) return nullptr;
        nlattr* peer = nest_start(m, 0);
        if (!peer) return nullptr;
        uint32_t flags = 0;
        if (pc.remove) flags |= WGPEER_F_REMOVE_ME;
        // A continued chunk must not create a peer that the first chunk skipped.
        if (pc.update_only) flags |= WGPEER_F_UPDATE_ONLY;
        if (pc.replace_allowed_ips && first_chunk && !pc.remove) flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
        bool fit = nla_put(m, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, pc.public_key.bytes.data()) >= 0;
        if (flags) fit = fit && nla_put_u32(m, WGPEER_A_FLAGS, flags) >= 0;
        if (first_chunk && !pc.remove) {
            if (ep) fit = fit && nla_put(m, WGPEER_A_ENDPOINT, static_cast<int>(ep->len), ep->bytes.data()) >= 0;
            if (pc.keepalive) fit = fit && nla_put_u16(m, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, *pc.keepalive) >= 0;
        }
        if (!fit) {
            nla_nest_cancel(m, peer);
            return nullptr;
        }
        return peer;
    }

    // Adds allowed IPs from index `next` while they fit; returns the index of the first left out.
    std::size_t put_allowed_ips(const WgPeerChange& pc, std::size_t next) {
        nl_msg* m = msg_.get();
        nlattr* list = nest_start(m, WGPEER_A_ALLOWEDIPS);
        if (!list) return next;
        std::size_t i = next;
        for (; i < pc.allowed_ips.size(); ++i) {
            const auto& p = pc.allowed_ips[i];
            nlattr* entry = nest_start(m, 0);
            if (!entry) break;
            bool v4 = p.addr.is_v4();
            if (nla_put_u16(m, WGALLOWEDIP_A_FAMILY, v4 ? AF_INET : AF_INET6) < 0 ||
                nla_put(m, WGALLOWEDIP_A_IPADDR, v4 ? 4 : 16, p.addr.bytes.data()) < 0 ||
                nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK, p.len) < 0) {
                nla_nest_cancel(m, entry);
                break;
            }
            nla_nest_end(m, entry);
        }
        if (i == next) nla_nest_cancel(m, list);
        else nla_nest_end(m, list);
        return i;
    }

    Status add_peer(const WgPeerChange& pc, const std::optional<WireEndpoint>& ep) {
        const std::size_t total = pc.remove ? 0 : pc.allowed_ips.size();
        std::size_t next = 0;
        bool first_chunk = true;
        for (;;) {
            nlattr* peer = open_peer(pc, first_chunk, ep);
            std::size_t before = next;
            if (peer && next < total) {
                next = put_allowed_ips(pc, next);
                // A header without a single allowed IP would only be a wasted chunk.
                if (next == before) {
                    nla_nest_cancel(msg_.get(), peer);
                    peer = nullptr;
                }
            }
            if (!peer) {
                // Only a message that already carries something is worth flushing; an empty one
                // would not fit this peer either.
                if (!has_payload_) return too_small(peer_label(pc.public_key) + " with one allowed IP");
                finish_message();
                if (auto s = start_message(); !s) return s;
                continue;
            }
            nla_nest_end(msg_.get(), peer);
            has_payload_ = true;
            if (next >= total) return Status::ok();
            // The rest of this peer's allowed IPs continue in the next message.
            first_chunk = false;
            finish_message();
            if (auto s = start_message(); !s) return s;
        }
    }

    const WgDeviceChange& change_;
    int family_;
    std::size_t limit_;
    std::vector<NlMsgPtr> out_;
    NlMsgPtr msg_;
    nlattr* peers_ = nullptr;
    bool has_payload_ = false;  // device attributes or at least one peer
};

}  // namespace

Result<std::vector<NlMsgPtr>> build_set_device(const WgDeviceChange& change, int family_id, std::size_t limit) {
    return SetBuilder(change, family_id, limit).build();
}

NlMsgPtr build_get_device(const std::string& ifname, int family_id) {
    NlMsgPtr msg(nlmsg_alloc());
    if (!msg) return nullptr;
    if (!genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family_id, 0, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP, WG_CMD_GET_DEVICE,
                     WG_GENL_VERSION) ||
        nla_put_string(msg.get(), WGDEVICE_A_IFNAME, ifname.c_str()) < 0)
        return nullptr;
    return msg;
}

// ---- reading GET_DEVICE ------------------------------------------------------------------------

namespace {

std::optional<model::Endpoint> parse_endpoint(const nlattr* a) {
    const auto len = static_cast<std::size_t>(nla_len(a));
    sa_family_t family = 0;
    std::memcpy(&family, nla_data(a), sizeof family);
    if (family == AF_INET && len == sizeof(sockaddr_in)) {
        sockaddr_in sin;
        std::memcpy(&sin, nla_data(a), sizeof sin);
        model::IpAddr ip;
        ip.family = 4;
        std::memcpy(ip.bytes.data(), &sin.sin_addr, 4);
        return model::Endpoint{ip.str(), ntohs(sin.sin_port)};
    }
    if (family == AF_INET6 && len == sizeof(sockaddr_in6)) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, nla_data(a), sizeof sin6);
        model::IpAddr ip;
        ip.family = 6;
        std::memcpy(ip.bytes.data(), &sin6.sin6_addr, 16);
        return model::Endpoint{ip.str(), ntohs(sin6.sin6_port)};
    }
    return std::nullopt;
}

std::optional<model::Prefix> parse_allowed_ip(nlattr* a) {
    nlattr* tb[WGALLOWEDIP_A_MAX + 1];
    if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, a, wg_allowedip_policy()) < 0) return std::nullopt;
    if (!tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] || !tb[WGALLOWEDIP_A_CIDR_MASK]) return std::nullopt;
    model::Prefix p;
    const uint16_t family = nla_get_u16(tb[WGALLOWEDIP_A_FAMILY]);
    const int len = nla_len(tb[WGALLOWEDIP_A_IPADDR]);
    if (family == AF_INET && len == 4) p.addr.family = 4;
    else if (family == AF_INET6 && len == 16) p.addr.family = 6;
    else return std::nullopt;
    std::memcpy(p.addr.bytes.data(), nla_data(tb[WGALLOWEDIP_A_IPADDR]), static_cast<std::size_t>(len));
    p.len = nla_get_u8(tb[WGALLOWEDIP_A_CIDR_MASK]);
    if (p.len > p.addr.bits()) return std::nullopt;
    return p.masked();
}

}  // namespace

Status WgDumpReader::add(const nlmsghdr* reply) {
    const int n = ++replies_;
    auto bad = [n](const std::string& why) { return errno_error(EBADMSG, fmt::format("WireGuard GET_DEVICE reply {}: {}", n, why)); };
    // libnl's parsers take a non-const header but do not write to it.
    auto* nlh = const_cast<nlmsghdr*>(reply);
    if (!genlmsg_valid_hdr(nlh, 0)) return bad("shorter than a generic netlink header");
    if (static_cast<const genlmsghdr*>(nlmsg_data(nlh))->cmd != WG_CMD_GET_DEVICE) return bad("not a GET_DEVICE message");
    nlattr* tb[WGDEVICE_A_MAX + 1];
    if (int r = genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, wg_device_policy()); r < 0)
        return bad(std::string("device attributes: ") + nl_geterror(r));

    auto& dev = live_.device;
    if (tb[WGDEVICE_A_IFNAME]) dev.name = nla_get_string(tb[WGDEVICE_A_IFNAME]);
    if (tb[WGDEVICE_A_LISTEN_PORT]) dev.listen_port = nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
    if (tb[WGDEVICE_A_FWMARK]) {
        uint32_t mark = nla_get_u32(tb[WGDEVICE_A_FWMARK]);
        live_.fwmark = mark ? std::optional<uint32_t>(mark) : std::nullopt;
    }
    if (tb[WGDEVICE_A_PRIVATE_KEY] && !live_.private_key) {
        std::array<uint8_t, WG_KEY_LEN> secret;
        std::memcpy(secret.data(), nla_data(tb[WGDEVICE_A_PRIVATE_KEY]), WG_KEY_LEN);
        live_.private_key = model::SecretKey(secret);
        sodium_memzero(secret.data(), secret.size());
    }
    if (tb[WGDEVICE_A_PUBLIC_KEY]) {
        model::Key k;
        std::memcpy(k.bytes.data(), nla_data(tb[WGDEVICE_A_PUBLIC_KEY]), WG_KEY_LEN);
        dev.public_key = k;
    } else if (live_.private_key && !dev.public_key) {
        // Kernels send both keys; derive only if the public one is missing.
        dev.public_key = live_.private_key->public_key();
    }

    if (!tb[WGDEVICE_A_PEERS]) return Status::ok();
    nlattr* pa;
    int rem;
    nla_for_each_nested(pa, tb[WGDEVICE_A_PEERS], rem) {
        nlattr* ptb[WGPEER_A_MAX + 1];
        if (int r = nla_parse_nested(ptb, WGPEER_A_MAX, pa, wg_peer_policy()); r < 0)
            return bad(std::string("peer attributes: ") + nl_geterror(r));
        if (!ptb[WGPEER_A_PUBLIC_KEY]) return bad("a peer without a public key");
        model::Key key;
        std::memcpy(key.bytes.data(), nla_data(ptb[WGPEER_A_PUBLIC_KEY]), WG_KEY_LEN);
        // A key seen before is the same peer continued from the previous message: the kernel
        // repeats only the key and the allowed IPs that did not fit.
        auto [it, fresh] = dev.peers.try_emplace(key);
        auto& peer = it->second;
        auto& stats = live_.stats[key];
        if (fresh) peer.public_key = key;
        if (ptb[WGPEER_A_ENDPOINT]) {
            auto ep = parse_endpoint(ptb[WGPEER_A_ENDPOINT]);
            if (!ep) return bad(peer_label(key) + ": endpoint is neither a sockaddr_in nor a sockaddr_in6");
            peer.endpoint = *ep;
        }
        if (ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) peer.keepalive = nla_get_u16(ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
        if (ptb[WGPEER_A_LAST_HANDSHAKE_TIME]) {
            __kernel_timespec ts;
            std::memcpy(&ts, nla_data(ptb[WGPEER_A_LAST_HANDSHAKE_TIME]), sizeof ts);
            stats.last_handshake = ts.tv_sec;
        }
        if (ptb[WGPEER_A_RX_BYTES]) stats.rx_bytes = nla_get_u64(ptb[WGPEER_A_RX_BYTES]);
        if (ptb[WGPEER_A_TX_BYTES]) stats.tx_bytes = nla_get_u64(ptb[WGPEER_A_TX_BYTES]);
        if (ptb[WGPEER_A_ALLOWEDIPS]) {
            std::vector<model::Prefix> ips;
            nlattr* aa;
            int arem;
            nla_for_each_nested(aa, ptb[WGPEER_A_ALLOWEDIPS], arem) {
                auto p = parse_allowed_ip(aa);
                if (!p) return bad(peer_label(key) + ": an allowed IP without a valid family, address and mask");
                ips.push_back(*p);
            }
            peer.allowed_ips.insert(std::move(ips));
        }
    }
    return Status::ok();
}

WgDeviceLive WgDumpReader::finish() const { return live_; }

Result<WgDeviceLive> parse_get_device(const std::vector<const nlmsghdr*>& replies) {
    WgDumpReader reader;
    for (const auto* r : replies)
        if (auto s = reader.add(r); !s) return s.error();
    return reader.finish();
}


}  // namespace wgf::linux_
