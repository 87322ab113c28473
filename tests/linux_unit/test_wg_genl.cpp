// The WireGuard generic netlink message layer without a socket: SET_DEVICE messages built for a
// change are parsed back with libnl's attribute parser against the WireGuard policy, and
// synthetic GET_DEVICE dump replies are read into a WgDeviceLive.
#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/time_types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "linux/wg_genl_msg.hpp"

using wgf::backend::WgDeviceChange;
using wgf::backend::WgPeerChange;
using wgf::linux_::NlMsgPtr;
using wgf::model::Endpoint;
using wgf::model::IpAddr;
using wgf::model::Key;
using wgf::model::Prefix;
using wgf::model::SecretKey;

namespace {

constexpr int kFamily = 0x1d;  // any id: the messages are never sent

Key key_of(uint8_t seed) {
    Key k;
    for (std::size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<uint8_t>(seed * 7 + i);
    return k;
}

Prefix pfx(const char* text) { return *Prefix::parse(text); }

WgPeerChange peer_change(const Key& k) {
    WgPeerChange p;
    p.public_key = k;
    return p;
}

// ---- parsing a SET message back, as the kernel would -------------------------------------------

struct ParsedPeer {
    Key key;
    std::set<int> attrs;  // attribute types present
    uint32_t flags = 0;
    std::vector<uint8_t> endpoint;  // raw sockaddr
    std::optional<uint16_t> keepalive;
    std::vector<Prefix> ips;
};

struct ParsedSet {
    uint32_t len = 0;
    uint16_t nl_flags = 0;
    uint8_t cmd = 0, version = 0;
    std::set<int> attrs;
    std::string ifname;
    std::vector<uint8_t> private_key;
    std::optional<uint16_t> port;
    std::optional<uint32_t> fwmark;
    std::optional<uint32_t> flags;
    std::vector<ParsedPeer> peers;
};

ParsedSet parse_set(nl_msg* msg) {
    ParsedSet out;
    nlmsghdr* nlh = nlmsg_hdr(msg);
    out.len = nlh->nlmsg_len;
    out.nl_flags = nlh->nlmsg_flags;
    REQUIRE(nlh->nlmsg_type == kFamily);
    auto* g = static_cast<genlmsghdr*>(nlmsg_data(nlh));
    out.cmd = g->cmd;
    out.version = g->version;
    nlattr* tb[WGDEVICE_A_MAX + 1];
    REQUIRE(genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, wgf::linux_::wg_device_policy()) == 0);
    for (int t = 1; t <= WGDEVICE_A_MAX; ++t)
        if (tb[t]) out.attrs.insert(t);
    if (tb[WGDEVICE_A_IFNAME]) out.ifname = nla_get_string(tb[WGDEVICE_A_IFNAME]);
    if (auto* a = tb[WGDEVICE_A_PRIVATE_KEY])
        out.private_key.assign(static_cast<uint8_t*>(nla_data(a)), static_cast<uint8_t*>(nla_data(a)) + nla_len(a));
    if (tb[WGDEVICE_A_LISTEN_PORT]) out.port = nla_get_u16(tb[WGDEVICE_A_LISTEN_PORT]);
    if (tb[WGDEVICE_A_FWMARK]) out.fwmark = nla_get_u32(tb[WGDEVICE_A_FWMARK]);
    if (tb[WGDEVICE_A_FLAGS]) out.flags = nla_get_u32(tb[WGDEVICE_A_FLAGS]);
    if (!tb[WGDEVICE_A_PEERS]) return out;
    // The kernel's nla_parse_nested() rejects nests without NLA_F_NESTED.
    REQUIRE((tb[WGDEVICE_A_PEERS]->nla_type & NLA_F_NESTED) != 0);
    nlattr* pa;
    int rem;
    nla_for_each_nested(pa, tb[WGDEVICE_A_PEERS], rem) {
        REQUIRE((pa->nla_type & NLA_F_NESTED) != 0);
        nlattr* ptb[WGPEER_A_MAX + 1];
        REQUIRE(nla_parse_nested(ptb, WGPEER_A_MAX, pa, wgf::linux_::wg_peer_policy()) == 0);
        ParsedPeer p;
        for (int t = 1; t <= WGPEER_A_MAX; ++t)
            if (ptb[t]) p.attrs.insert(t);
        REQUIRE(ptb[WGPEER_A_PUBLIC_KEY]);
        std::memcpy(p.key.bytes.data(), nla_data(ptb[WGPEER_A_PUBLIC_KEY]), 32);
        if (ptb[WGPEER_A_FLAGS]) p.flags = nla_get_u32(ptb[WGPEER_A_FLAGS]);
        if (auto* a = ptb[WGPEER_A_ENDPOINT])
            p.endpoint.assign(static_cast<uint8_t*>(nla_data(a)), static_cast<uint8_t*>(nla_data(a)) + nla_len(a));
        if (ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) p.keepalive = nla_get_u16(ptb[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
        if (ptb[WGPEER_A_ALLOWEDIPS]) {
            REQUIRE((ptb[WGPEER_A_ALLOWEDIPS]->nla_type & NLA_F_NESTED) != 0);
            nlattr* ia;
            int irem;
            nla_for_each_nested(ia, ptb[WGPEER_A_ALLOWEDIPS], irem) {
                REQUIRE((ia->nla_type & NLA_F_NESTED) != 0);
                nlattr* itb[WGALLOWEDIP_A_MAX + 1];
                REQUIRE(nla_parse_nested(itb, WGALLOWEDIP_A_MAX, ia, wgf::linux_::wg_allowedip_policy()) == 0);
                REQUIRE(itb[WGALLOWEDIP_A_FAMILY]);
                REQUIRE(itb[WGALLOWEDIP_A_IPADDR]);
                REQUIRE(itb[WGALLOWEDIP_A_CIDR_MASK]);
                Prefix q;
                uint16_t fam = nla_get_u16(itb[WGALLOWEDIP_A_FAMILY]);
                REQUIRE((fam == AF_INET || fam == AF_INET6));
                q.addr.family = fam == AF_INET ? 4 : 6;
                REQUIRE(nla_len(itb[WGALLOWEDIP_A_IPADDR]) == (fam == AF_INET ? 4 : 16));
                std::memcpy(q.addr.bytes.data(), nla_data(itb[WGALLOWEDIP_A_IPADDR]), q.addr.bits() / 8);
                q.len = nla_get_u8(itb[WGALLOWEDIP_A_CIDR_MASK]);
                p.ips.push_back(q);
            }
        }
        out.peers.push_back(std::move(p));
    }
    return out;
}

std::vector<ParsedSet> build_and_parse(const WgDeviceChange& c, std::size_t limit = wgf::linux_::kWgSetMessageLimit) {
    auto msgs = wgf::linux_::build_set_device(c, kFamily, limit);
    REQUIRE(msgs.is_ok());
    std::vector<ParsedSet> out;
    for (auto& m : *msgs) out.push_back(parse_set(m.get()));
    return out;
}

std::vector<uint8_t> sockaddr_v4(const char* ip, uint16_t port) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    auto* b = reinterpret_cast<uint8_t*>(&sin);
    return {b, b + sizeof sin};
}

std::vector<uint8_t> sockaddr_v6(const char* ip, uint16_t port) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &sin6.sin6_addr);
    auto* b = reinterpret_cast<uint8_t*>(&sin6);
    return {b, b + sizeof sin6};
}

// Allowed IPs fd00:0:0:N::/64 for N in [first, first + count).
std::vector<Prefix> many_v6(unsigned first, unsigned count) {
    std::vector<Prefix> out;
    for (unsigned i = first; i < first + count; ++i) {
        Prefix p = pfx("fd00::/64");
        p.addr.bytes[4] = static_cast<uint8_t>(i >> 8);
        p.addr.bytes[5] = static_cast<uint8_t>(i);
        p.addr.bytes[6] = static_cast<uint8_t>(i >> 16);
        out.push_back(p);
    }
    return out;
}

}  // namespace

TEST_CASE("a one-peer change carries exactly that peer and no device fields", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg-mesh";
    WgPeerChange p;
    p.public_key = key_of(1);
    p.endpoint = Endpoint{"192.0.2.7", 51820};
    p.keepalive = 25;
    p.allowed_ips = {pfx("10.1.0.0/24"), pfx("fd00:1::/64")};
    c.peers = {p};

    auto msgs = build_and_parse(c);
    REQUIRE(msgs.size() == 1);
    const auto& m = msgs[0];
    CHECK(m.cmd == WG_CMD_SET_DEVICE);
    CHECK(m.version == WG_GENL_VERSION);
    CHECK((m.nl_flags & NLM_F_REQUEST) != 0);
    CHECK((m.nl_flags & NLM_F_ACK) != 0);
    CHECK(m.ifname == "wg-mesh");
    // No private key, port, fwmark or flags: the change sets none of them.
    CHECK(m.attrs == std::set<int>{WGDEVICE_A_IFNAME, WGDEVICE_A_PEERS});
    REQUIRE(m.peers.size() == 1);
    const auto& q = m.peers[0];
    CHECK(q.key == key_of(1));
    CHECK(q.attrs == std::set<int>{WGPEER_A_PUBLIC_KEY, WGPEER_A_ENDPOINT, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, WGPEER_A_ALLOWEDIPS});
    CHECK(q.flags == 0);
    CHECK(q.endpoint == sockaddr_v4("192.0.2.7", 51820));
    CHECK(q.keepalive == 25);
    CHECK(q.ips == p.allowed_ips);
}

TEST_CASE("a peer without endpoint, keepalive or allowed IPs carries only its key", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    c.peers = {peer_change(key_of(2))};
    auto msgs = build_and_parse(c);
    REQUIRE(msgs.size() == 1);
    REQUIRE(msgs[0].peers.size() == 1);
    CHECK(msgs[0].peers[0].attrs == std::set<int>{WGPEER_A_PUBLIC_KEY});
}

TEST_CASE("keepalive 0 is sent as 0 (turn off), not left out", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange p = peer_change(key_of(2));
    p.keepalive = 0;
    c.peers = {p};
    auto msgs = build_and_parse(c);
    REQUIRE(msgs[0].peers.size() == 1);
    CHECK(msgs[0].peers[0].keepalive == std::optional<uint16_t>(0));
}

TEST_CASE("device fields are sent only when set", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";

    SECTION("nothing set: only the name") {
        auto msgs = build_and_parse(c);
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].attrs == std::set<int>{WGDEVICE_A_IFNAME});
    }
    SECTION("private key, port, fwmark, replace_peers") {
        SecretKey sk = SecretKey::generate();
        c.private_key = sk;
        c.listen_port = 51820;
        c.fwmark = 0x57;
        c.replace_peers = true;
        auto msgs = build_and_parse(c);
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].attrs ==
              std::set<int>{WGDEVICE_A_IFNAME, WGDEVICE_A_PRIVATE_KEY, WGDEVICE_A_LISTEN_PORT, WGDEVICE_A_FWMARK, WGDEVICE_A_FLAGS});
        CHECK(msgs[0].private_key == std::vector<uint8_t>(sk.raw().begin(), sk.raw().end()));
        CHECK(msgs[0].port == 51820);
        CHECK(msgs[0].fwmark == 0x57u);
        CHECK(msgs[0].flags == uint32_t{WGDEVICE_F_REPLACE_PEERS});
    }
    SECTION("port 0 and fwmark 0 are values (random port, mark off), not absence") {
        c.listen_port = 0;
        c.fwmark = 0;
        auto msgs = build_and_parse(c);
        CHECK(msgs[0].attrs == std::set<int>{WGDEVICE_A_IFNAME, WGDEVICE_A_LISTEN_PORT, WGDEVICE_A_FWMARK});
        CHECK(msgs[0].port == 0);
        CHECK(msgs[0].fwmark == 0u);
    }
}

TEST_CASE("per-peer flags are exactly those of the change", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange update = peer_change(key_of(1));
    update.update_only = true;
    update.endpoint = Endpoint{"2001:db8::1", 4500};
    WgPeerChange remove = peer_change(key_of(2));
    remove.remove = true;
    remove.endpoint = Endpoint{"192.0.2.1", 1};  // ignored: a removal carries nothing else
    remove.keepalive = 10;
    remove.allowed_ips = {pfx("10.9.0.0/16")};
    WgPeerChange replace = peer_change(key_of(3));
    replace.replace_allowed_ips = true;
    replace.allowed_ips = {pfx("10.3.0.0/16")};
    WgPeerChange clear = peer_change(key_of(4));
    clear.replace_allowed_ips = true;  // with an empty list: remove all allowed IPs
    WgPeerChange add = peer_change(key_of(5));
    add.allowed_ips = {pfx("10.5.0.0/16")};
    c.peers = {update, remove, replace, clear, add};

    auto msgs = build_and_parse(c);
    REQUIRE(msgs.size() == 1);
    const auto& ps = msgs[0].peers;
    REQUIRE(ps.size() == 5);
    CHECK(ps[0].flags == uint32_t{WGPEER_F_UPDATE_ONLY});
    CHECK(ps[0].attrs == std::set<int>{WGPEER_A_PUBLIC_KEY, WGPEER_A_FLAGS, WGPEER_A_ENDPOINT});
    CHECK(ps[1].key == key_of(2));
    CHECK(ps[1].flags == uint32_t{WGPEER_F_REMOVE_ME});
    CHECK(ps[1].attrs == std::set<int>{WGPEER_A_PUBLIC_KEY, WGPEER_A_FLAGS});
    CHECK(ps[2].flags == uint32_t{WGPEER_F_REPLACE_ALLOWEDIPS});
    CHECK(ps[2].ips == replace.allowed_ips);
    CHECK(ps[3].flags == uint32_t{WGPEER_F_REPLACE_ALLOWEDIPS});
    CHECK(ps[3].attrs == std::set<int>{WGPEER_A_PUBLIC_KEY, WGPEER_A_FLAGS});
    CHECK(ps[4].flags == 0);
    CHECK(ps[4].attrs == std::set<int>{WGPEER_A_PUBLIC_KEY, WGPEER_A_ALLOWEDIPS});
    CHECK(ps[4].ips == add.allowed_ips);
}

TEST_CASE("endpoints are sent as sockaddr_in and sockaddr_in6", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange a = peer_change(key_of(1)), b = peer_change(key_of(2));
    a.endpoint = Endpoint{"198.51.100.20", 1};
    b.endpoint = Endpoint{"2001:db8:0:1::20", 65535};
    c.peers = {a, b};
    auto msgs = build_and_parse(c);
    REQUIRE(msgs[0].peers.size() == 2);
    CHECK(msgs[0].peers[0].endpoint == sockaddr_v4("198.51.100.20", 1));
    CHECK(msgs[0].peers[0].endpoint.size() == sizeof(sockaddr_in));
    CHECK(msgs[0].peers[1].endpoint == sockaddr_v6("2001:db8:0:1::20", 65535));
    CHECK(msgs[0].peers[1].endpoint.size() == sizeof(sockaddr_in6));
}

TEST_CASE("an endpoint that is not an IP literal with a port is refused", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange a = peer_change(key_of(1));
    SECTION("a DNS name") { a.endpoint = Endpoint{"vpn.example.com", 51820}; }
    SECTION("no port") { a.endpoint = Endpoint{"192.0.2.1", 0}; }
    c.peers = {a};
    auto msgs = wgf::linux_::build_set_device(c, kFamily);
    REQUIRE_FALSE(msgs.is_ok());
    CHECK(msgs.error().code == EINVAL);
    CHECK_THAT(msgs.error().message,
               Catch::Contains("set WireGuard device wg0: peer ") && Catch::Contains("must be an IP literal with a port"));
}

TEST_CASE("thousands of allowed IPs are split into messages within the limit", "[wg_genl]") {
    const std::size_t limit = GENERATE(std::size_t{1024}, wgf::linux_::kWgSetMessageLimit);
    SecretKey sk = SecretKey::generate();
    WgDeviceChange c;
    c.ifname = "wg0";
    c.private_key = sk;
    c.listen_port = 51820;
    c.replace_peers = true;
    WgPeerChange small1 = peer_change(key_of(1));
    small1.allowed_ips = {pfx("10.0.1.0/24")};
    WgPeerChange big = peer_change(key_of(2));
    big.replace_allowed_ips = true;
    big.update_only = true;
    big.endpoint = Endpoint{"192.0.2.2", 51820};
    big.keepalive = 25;
    big.allowed_ips = many_v6(0, 3000);
    WgPeerChange small3 = peer_change(key_of(3));
    small3.replace_allowed_ips = true;
    small3.allowed_ips = {pfx("10.0.3.0/24")};
    c.peers = {small1, big, small3};

    auto msgs = build_and_parse(c, limit);
    REQUIRE(msgs.size() > 2);
    std::vector<Prefix> big_ips;
    std::vector<Key> order;
    int big_chunks = 0;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        const auto& m = msgs[i];
        INFO("message " << i << " of " << msgs.size());
        CHECK(m.len <= limit);
        CHECK(m.ifname == "wg0");
        if (i == 0) {
            CHECK(m.flags == uint32_t{WGDEVICE_F_REPLACE_PEERS});
            CHECK(m.private_key.size() == 32);
            CHECK(m.port == 51820);
        } else {
            // Device fields and REPLACE_PEERS in a later message would undo the earlier ones.
            CHECK(m.attrs == std::set<int>{WGDEVICE_A_IFNAME, WGDEVICE_A_PEERS});
        }
        for (const auto& p : m.peers) {
            if (order.empty() || order.back() != p.key) order.push_back(p.key);
            if (p.key != key_of(2)) continue;
            const bool first = big_chunks++ == 0;
            INFO("chunk " << big_chunks);
            CHECK(p.flags == (first ? uint32_t{WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY} : uint32_t{WGPEER_F_UPDATE_ONLY}));
            CHECK(p.attrs.count(WGPEER_A_ENDPOINT) == (first ? 1u : 0u));
            CHECK(p.keepalive == (first ? std::optional<uint16_t>(25) : std::nullopt));
            CHECK_FALSE(p.ips.empty());
            big_ips.insert(big_ips.end(), p.ips.begin(), p.ips.end());
        }
    }
    CHECK(big_chunks > 1);
    CHECK(big_ips == big.allowed_ips);
    CHECK(order == std::vector<Key>{key_of(1), key_of(2), key_of(3)});
}

TEST_CASE("many peers fill messages peer by peer, REPLACE_PEERS only in the first", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    c.replace_peers = true;
    for (unsigned i = 0; i < 500; ++i) {
        WgPeerChange p = peer_change(key_of(static_cast<uint8_t>(i)));
        p.public_key.bytes[0] = static_cast<uint8_t>(i >> 8);
        p.endpoint = Endpoint{"192.0.2.9", static_cast<uint16_t>(1000 + i)};
        p.allowed_ips = many_v6(i * 4, 4);
        c.peers.push_back(p);
    }
    auto msgs = build_and_parse(c);
    REQUIRE(msgs.size() > 1);
    std::vector<ParsedPeer> all;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        CHECK(msgs[i].len <= wgf::linux_::kWgSetMessageLimit);
        CHECK(msgs[i].flags == (i == 0 ? std::optional<uint32_t>(WGDEVICE_F_REPLACE_PEERS) : std::nullopt));
        all.insert(all.end(), msgs[i].peers.begin(), msgs[i].peers.end());
    }
    REQUIRE(all.size() == c.peers.size());  // small peers are never split
    for (std::size_t i = 0; i < all.size(); ++i) {
        CHECK(all[i].key == c.peers[i].public_key);
        CHECK(all[i].ips == c.peers[i].allowed_ips);
    }
}

TEST_CASE("a limit too small for one allowed IP is an error, not a loop", "[wg_genl]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange p = peer_change(key_of(1));
    p.allowed_ips = {pfx("10.0.0.0/8")};
    c.peers = {p};
    auto msgs = wgf::linux_::build_set_device(c, kFamily, 80);
    REQUIRE_FALSE(msgs.is_ok());
    CHECK(msgs.error().code == EMSGSIZE);
}

TEST_CASE("the GET_DEVICE request is a dump naming the device", "[wg_genl]") {
    NlMsgPtr m = wgf::linux_::build_get_device("wg-mesh", kFamily);
    REQUIRE(m);
    nlmsghdr* nlh = nlmsg_hdr(m.get());
    CHECK((nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP);
    CHECK(static_cast<genlmsghdr*>(nlmsg_data(nlh))->cmd == WG_CMD_GET_DEVICE);
    nlattr* tb[WGDEVICE_A_MAX + 1];
    REQUIRE(genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, wgf::linux_::wg_device_policy()) == 0);
    REQUIRE(tb[WGDEVICE_A_IFNAME]);
    CHECK(std::string(nla_get_string(tb[WGDEVICE_A_IFNAME])) == "wg-mesh");
}

// ---- synthetic GET_DEVICE replies --------------------------------------------------------------

namespace {

struct ReplyBuilder {
    NlMsgPtr msg{nlmsg_alloc_size(65536)};
    nlattr* peers = nullptr;
    nlattr* peer = nullptr;
    nlattr* ips = nullptr;

    explicit ReplyBuilder(bool first, const SecretKey* sk = nullptr, bool with_public = true, uint32_t fwmark = 0x57) {
        REQUIRE(genlmsg_put(msg.get(), 1234, 9, kFamily, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE, WG_GENL_VERSION));
        nla_put_u32(msg.get(), WGDEVICE_A_IFINDEX, 7);
        nla_put_string(msg.get(), WGDEVICE_A_IFNAME, "wg-mesh");
        if (first) {
            nla_put_u16(msg.get(), WGDEVICE_A_LISTEN_PORT, 51820);
            nla_put_u32(msg.get(), WGDEVICE_A_FWMARK, fwmark);
            if (sk) {
                nla_put(msg.get(), WGDEVICE_A_PRIVATE_KEY, 32, sk->raw().data());
                if (with_public) nla_put(msg.get(), WGDEVICE_A_PUBLIC_KEY, 32, sk->public_key().bytes.data());
            }
        }
        peers = nla_nest_start(msg.get(), NLA_F_NESTED | WGDEVICE_A_PEERS);
    }
    void begin_peer(const Key& k) {
        peer = nla_nest_start(msg.get(), NLA_F_NESTED);
        nla_put(msg.get(), WGPEER_A_PUBLIC_KEY, 32, k.bytes.data());
    }
    void peer_details(const std::vector<uint8_t>& endpoint, uint16_t keepalive, int64_t handshake, uint64_t rx, uint64_t tx) {
        uint8_t psk[32] = {};
        nla_put(msg.get(), WGPEER_A_PRESHARED_KEY, 32, psk);
        __kernel_timespec ts{handshake, 5};
        nla_put(msg.get(), WGPEER_A_LAST_HANDSHAKE_TIME, sizeof ts, &ts);
        nla_put_u16(msg.get(), WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, keepalive);
        nla_put_u64(msg.get(), WGPEER_A_RX_BYTES, rx);
        nla_put_u64(msg.get(), WGPEER_A_TX_BYTES, tx);
        nla_put_u32(msg.get(), WGPEER_A_PROTOCOL_VERSION, 1);
        if (!endpoint.empty()) nla_put(msg.get(), WGPEER_A_ENDPOINT, static_cast<int>(endpoint.size()), endpoint.data());
    }
    void ips_of(const std::vector<Prefix>& list) {
        ips = nla_nest_start(msg.get(), NLA_F_NESTED | WGPEER_A_ALLOWEDIPS);
        for (const auto& p : list) {
            nlattr* e = nla_nest_start(msg.get(), NLA_F_NESTED);
            nla_put_u16(msg.get(), WGALLOWEDIP_A_FAMILY, p.addr.is_v4() ? AF_INET : AF_INET6);
            nla_put(msg.get(), WGALLOWEDIP_A_IPADDR, p.addr.is_v4() ? 4 : 16, p.addr.bytes.data());
            nla_put_u8(msg.get(), WGALLOWEDIP_A_CIDR_MASK, p.len);
            nla_nest_end(msg.get(), e);
        }
        nla_nest_end(msg.get(), ips);
    }
    void end_peer() { nla_nest_end(msg.get(), peer); }
    const nlmsghdr* done() {
        nla_nest_end(msg.get(), peers);
        return nlmsg_hdr(msg.get());
    }
};

}  // namespace

TEST_CASE("a peer split over two dump messages is coalesced", "[wg_genl]") {
    SecretKey sk = SecretKey::generate();
    Key k1 = key_of(1), k2 = key_of(2), k3 = key_of(3);

    ReplyBuilder first(true, &sk);
    first.begin_peer(k1);
    first.peer_details(sockaddr_v4("192.0.2.1", 51820), 25, 1700000000, 100, 200);
    first.ips_of({pfx("10.1.0.7/24")});  // host bits: read back masked
    first.end_peer();
    first.begin_peer(k2);
    first.peer_details(sockaddr_v6("2001:db8::2", 4500), 0, 0, 0, 0);
    first.ips_of({pfx("fd00:2::/64"), pfx("10.2.0.0/16")});
    first.end_peer();

    ReplyBuilder second(false);
    second.begin_peer(k2);  // continued: key and allowed IPs only
    second.ips_of({pfx("10.0.2.0/24"), pfx("fd00:1::/64"), pfx("10.2.0.0/16")});
    second.end_peer();
    second.begin_peer(k3);
    second.peer_details({}, 0, 0, 0, 0);
    second.end_peer();

    auto live = wgf::linux_::parse_get_device({first.done(), second.done()});
    REQUIRE(live.is_ok());
    const auto& d = live->device;
    CHECK(d.name == "wg-mesh");
    CHECK(d.listen_port == 51820);
    CHECK(d.public_key == sk.public_key());
    CHECK(live->fwmark == 0x57u);
    REQUIRE(d.peers.size() == 3);

    const auto& p1 = d.peers.at(k1);
    CHECK(p1.public_key == k1);
    CHECK(p1.endpoint == Endpoint{"192.0.2.1", 51820});
    CHECK(p1.keepalive == 25);
    CHECK(p1.allowed_ips.prefixes() == std::vector<Prefix>{pfx("10.1.0.0/24")});
    CHECK(live->stats.at(k1).last_handshake == 1700000000);
    CHECK(live->stats.at(k1).rx_bytes == 100);
    CHECK(live->stats.at(k1).tx_bytes == 200);

    const auto& p2 = d.peers.at(k2);
    CHECK(p2.endpoint == Endpoint{"2001:db8::2", 4500});  // from the first chunk, kept
    CHECK(p2.keepalive == 0);
    CHECK(p2.allowed_ips.prefixes() == std::vector<Prefix>{pfx("10.0.2.0/24"), pfx("10.2.0.0/16"), pfx("fd00:1::/64"), pfx("fd00:2::/64")});

    const auto& p3 = d.peers.at(k3);
    CHECK_FALSE(p3.endpoint);
    CHECK(p3.allowed_ips.empty());
}

TEST_CASE("the device's public key: sent, derived, or absent", "[wg_genl]") {
    SecretKey sk = SecretKey::generate();
    SECTION("sent with the private key, which is kept (for a try that must restore it)") {
        ReplyBuilder r(true, &sk, true);
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE(live.is_ok());
        CHECK(live->device.public_key == sk.public_key());
        REQUIRE(live->private_key);
        CHECK(*live->private_key == sk);
    }
    SECTION("derived from the private key when the public one is missing") {
        ReplyBuilder r(true, &sk, false);
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE(live.is_ok());
        CHECK(live->device.public_key == sk.public_key());
        REQUIRE(live->private_key);
        CHECK(*live->private_key == sk);
    }
    SECTION("absent when the device has no private key; fwmark 0 reads as unset") {
        ReplyBuilder r(true, nullptr, false, 0);
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE(live.is_ok());
        CHECK_FALSE(live->device.public_key);
        CHECK_FALSE(live->private_key);
        CHECK_FALSE(live->fwmark);
        CHECK(live->device.peers.empty());
    }
}

TEST_CASE("malformed dump replies are errors", "[wg_genl]") {
    SECTION("a peer without a public key") {
        ReplyBuilder r(true);
        r.peer = nla_nest_start(r.msg.get(), NLA_F_NESTED);
        nla_put_u16(r.msg.get(), WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 5);
        r.end_peer();
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE_FALSE(live.is_ok());
        CHECK(live.error().code == EBADMSG);
        CHECK_THAT(live.error().message, Catch::Contains("a peer without a public key"));
    }
    SECTION("a key of the wrong length fails the policy") {
        ReplyBuilder r(true);
        r.peer = nla_nest_start(r.msg.get(), NLA_F_NESTED);
        uint8_t shortkey[16] = {};
        nla_put(r.msg.get(), WGPEER_A_PUBLIC_KEY, 16, shortkey);
        r.end_peer();
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE_FALSE(live.is_ok());
        CHECK(live.error().code == EBADMSG);
    }
    SECTION("an allowed IP with a mask longer than its family") {
        ReplyBuilder r(true);
        r.begin_peer(key_of(1));
        Prefix bad = pfx("10.0.0.0/8");
        bad.len = 33;
        r.ips_of({bad});
        r.end_peer();
        auto live = wgf::linux_::parse_get_device({r.done()});
        REQUIRE_FALSE(live.is_ok());
        CHECK(live.error().code == EBADMSG);
    }
}

TEST_CASE("a built change read back as a dump reproduces the change", "[wg_genl]") {
    // The SET and GET attribute layouts are the same; this checks the two halves agree.
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange p = peer_change(key_of(9));
    p.endpoint = Endpoint{"2001:db8::9", 9};
    p.keepalive = 9;
    p.allowed_ips = many_v6(0, 2000);
    c.peers = {p};
    auto msgs = wgf::linux_::build_set_device(c, kFamily);
    REQUIRE(msgs.is_ok());
    REQUIRE(msgs->size() > 1);
    std::vector<const nlmsghdr*> replies;
    for (auto& m : *msgs) {
        auto* g = static_cast<genlmsghdr*>(nlmsg_data(nlmsg_hdr(m.get())));
        g->cmd = WG_CMD_GET_DEVICE;
        replies.push_back(nlmsg_hdr(m.get()));
    }
    auto live = wgf::linux_::parse_get_device(replies);
    REQUIRE(live.is_ok());
    REQUIRE(live->device.peers.size() == 1);
    const auto& q = live->device.peers.at(p.public_key);
    CHECK(q.endpoint == p.endpoint);
    CHECK(q.keepalive == 9);
    auto sorted = p.allowed_ips;
    std::sort(sorted.begin(), sorted.end());
    CHECK(q.allowed_ips.prefixes() == sorted);
}
