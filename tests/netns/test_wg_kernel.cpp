// linux_::WgGenl against the kernel's WireGuard module, inside namespaces the tests create: create
// and delete links, apply a device and read it back equal, apply again, remove a peer, and changes
// large enough to span several SET messages and several dump messages. `wg show dump` (when
// installed) is the independent check of what the kernel holds. Every test is [kernel]: it skips,
// saying so, where the module is absent. The links stay down, so nothing is ever sent to the
// endpoints configured here.
#include <algorithm>
#include <cerrno>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "backend/backend.hpp"
#include "linux/wg_genl.hpp"
#include "support.hpp"

using wgf::backend::WgDeviceChange;
using wgf::backend::WgDeviceLive;
using wgf::backend::WgPeerChange;
using wgf::linux_::WgGenl;
using wgf::model::Endpoint;
using wgf::model::Key;
using wgf::model::Prefix;
using wgf::model::SecretKey;
using wgf::model::WgPeer;
using wgf::test::InNetns;
using wgf::test::Netns;
using Peers = std::map<Key, WgPeer>;

namespace Catch {
template <>
struct StringMaker<Peers> {
    static std::string convert(const Peers& peers) {
        std::string s = fmt::format("{} peers:", peers.size());
        for (const auto& [k, p] : peers) {
            s += fmt::format("\n  {} endpoint {} keepalive {} allowed-ips", k.short_str(), p.endpoint ? p.endpoint->str() : "-",
                             p.keepalive);
            std::size_t shown = 0;
            for (const auto& a : p.allowed_ips) {
                if (++shown > 6) {
                    s += fmt::format(" … ({} in all)", p.allowed_ips.size());
                    break;
                }
                s += " " + a.str();
            }
        }
        return s;
    }
};
}  // namespace Catch

namespace {

// Tests need root for namespaces and the module for `wireguard` links; each skips with a WARN.
bool kernel_ready() { return wgf::test::netns_available() && wgf::test::kernel_wireguard_available(); }

const char* kIf = "wgk0";

Prefix pfx(const char* text) { return *Prefix::parse(text); }

Key pubkey() { return SecretKey::generate().public_key(); }

WgPeerChange peer_change(const Key& k, std::vector<Prefix> ips) {
    WgPeerChange p;
    p.public_key = k;
    p.replace_allowed_ips = true;
    p.allowed_ips = std::move(ips);
    return p;
}

WgPeerChange removal(const Key& k) {
    WgPeerChange p;
    p.public_key = k;
    p.remove = true;
    return p;
}

// Allowed IPs fd00:S:N::/64 for N in [first, first + count).
std::vector<Prefix> many_v6(unsigned series, unsigned first, unsigned count) {
    std::vector<Prefix> out;
    for (unsigned i = first; i < first + count; ++i) {
        Prefix p = pfx("fd00::/64");
        p.addr.bytes[2] = static_cast<uint8_t>(series >> 8);
        p.addr.bytes[3] = static_cast<uint8_t>(series);
        p.addr.bytes[4] = static_cast<uint8_t>(i >> 8);
        p.addr.bytes[5] = static_cast<uint8_t>(i);
        out.push_back(p);
    }
    return out;
}

// What the device should hold after `change` was applied to an empty device.
Peers expected_peers(const WgDeviceChange& change) {
    Peers out;
    for (const auto& pc : change.peers) {
        if (pc.remove) {
            out.erase(pc.public_key);
            continue;
        }
        WgPeer p;
        p.public_key = pc.public_key;
        p.endpoint = pc.endpoint;
        p.keepalive = pc.keepalive.value_or(0);
        p.allowed_ips = wgf::model::PrefixSet(pc.allowed_ips);
        out[p.public_key] = p;
    }
    return out;
}

WgDeviceLive read_ok(WgGenl& wg, const std::string& ifname) {
    auto r = wg.read_device(ifname);
    INFO((r.is_ok() ? std::string() : r.error().message));
    REQUIRE(r.is_ok());
    return *r;
}

void set_ok(WgGenl& wg, const WgDeviceChange& c) {
    auto s = wg.set_device(c);
    INFO((s.is_ok() ? std::string() : s.error().message));
    REQUIRE(s.is_ok());
}

// The peers as `wg show IF dump` reports them: public key -> "endpoint|keepalive|ip,ip,..." with
// the allowed IPs sorted as text. Empty optional when `wg` is not installed.
std::optional<std::map<std::string, std::string>> wg_show_peers(const Netns& ns, const std::string& ifname) {
    if (wgf::test::sh("command -v wg").status != 0) {
        WARN("`wg` is not installed: the independent check with wg show is skipped");
        return std::nullopt;
    }
    auto r = ns.sh("wg show " + ifname + " dump");
    REQUIRE(r.status == 0);
    std::map<std::string, std::string> out;
    std::istringstream lines(r.out);
    std::string line;
    std::getline(lines, line);  // the device line
    while (std::getline(lines, line)) {
        std::vector<std::string> f;
        std::istringstream fields(line);
        std::string field;
        while (std::getline(fields, field, '\t')) f.push_back(field);
        REQUIRE(f.size() == 8);
        std::vector<std::string> ips;
        std::istringstream list(f[3]);
        while (std::getline(list, field, ',')) ips.push_back(field);
        std::sort(ips.begin(), ips.end());
        std::string joined;
        for (const auto& ip : ips) joined += (joined.empty() ? "" : ",") + ip;
        if (f[3] == "(none)") joined = "";
        out[f[0]] = f[2] + "|" + f[7] + "|" + joined;
    }
    return out;
}

std::map<std::string, std::string> as_wg_show(const Peers& peers) {
    std::map<std::string, std::string> out;
    for (const auto& [k, p] : peers) {
        std::vector<std::string> ips;
        for (const auto& a : p.allowed_ips) ips.push_back(a.str());
        std::sort(ips.begin(), ips.end());
        std::string joined;
        for (const auto& ip : ips) joined += (joined.empty() ? "" : ",") + ip;
        std::string ep = "(none)";
        if (p.endpoint)
            ep = p.endpoint->host.find(':') != std::string::npos ? fmt::format("[{}]:{}", p.endpoint->host, p.endpoint->port)
                                                                 : fmt::format("{}:{}", p.endpoint->host, p.endpoint->port);
        out[k.base64()] = ep + "|" + (p.keepalive ? std::to_string(p.keepalive) : "off") + "|" + joined;
    }
    return out;
}

void check_with_wg_show(const Netns& ns, const Peers& expected) {
    auto shown = wg_show_peers(ns, kIf);
    if (shown) CHECK(*shown == as_wg_show(expected));
}

}  // namespace

TEST_CASE("create_device makes a wireguard link, delete_device removes only wireguard links", "[kernel]") {
    if (!kernel_ready()) return;
    Netns ns;
    REQUIRE(ns.sh("ip link add vk0 type veth peer name vk1").status == 0);
    InNetns in(ns);
    WgGenl wg;

    auto created = wg.create_device(kIf);
    INFO((created.is_ok() ? std::string() : created.error().message));
    REQUIRE(created.is_ok());
    CHECK_THAT(ns.sh(std::string("ip -d link show ") + kIf).out, Catch::Contains("wireguard"));
    CHECK(wg.list_devices() == std::vector<std::string>{kIf});  // the veth pair is not listed

    auto again = wg.create_device(kIf);
    REQUIRE_FALSE(again.is_ok());
    CHECK(again.error().code == EEXIST);

    auto fresh = read_ok(wg, kIf);
    CHECK(fresh.device.name == kIf);
    CHECK_FALSE(fresh.device.public_key);  // no private key yet
    CHECK(fresh.device.peers.empty());
    CHECK_FALSE(fresh.fwmark);

    auto missing = wg.read_device("nosuch0");
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.error().code == ENODEV);
    auto veth = wg.read_device("vk0");
    REQUIRE_FALSE(veth.is_ok());
    CHECK(veth.error().code == ENODEV);

    auto refused = wg.delete_device("vk0");
    REQUIRE_FALSE(refused.is_ok());
    CHECK(refused.error().code == ENODEV);
    CHECK_THAT(refused.error().message, Catch::Contains("not wireguard"));
    CHECK(ns.sh("ip link show vk0").status == 0);

    auto deleted = wg.delete_device(kIf);
    INFO((deleted.is_ok() ? std::string() : deleted.error().message));
    REQUIRE(deleted.is_ok());
    CHECK(ns.sh(std::string("ip link show ") + kIf).status != 0);
    CHECK(wg.list_devices().empty());
    auto gone = wg.read_device(kIf);
    REQUIRE_FALSE(gone.is_ok());
    CHECK(gone.error().code == ENODEV);
    auto twice = wg.delete_device(kIf);
    REQUIRE_FALSE(twice.is_ok());
    CHECK(twice.error().code == ENODEV);
}

TEST_CASE("apply a device, read it back equal, apply again, remove a peer", "[kernel]") {
    if (!kernel_ready()) return;
    Netns ns;
    InNetns in(ns);
    WgGenl wg;
    REQUIRE(wg.create_device(kIf).is_ok());

    SecretKey sk = SecretKey::generate();
    Key a = pubkey(), b = pubkey(), c = pubkey();
    WgDeviceChange first;
    first.ifname = kIf;
    first.private_key = sk;
    first.listen_port = 51820;
    first.fwmark = 0x57;
    first.replace_peers = true;  // the device was created in this apply
    WgPeerChange pa = peer_change(a, {pfx("10.10.1.0/24"), pfx("fd00:10:1::/64")});
    pa.endpoint = Endpoint{"192.0.2.1", 51820};
    pa.keepalive = 25;
    WgPeerChange pb = peer_change(b, {pfx("10.10.2.0/24")});
    pb.endpoint = Endpoint{"2001:db8::2", 4500};
    WgPeerChange pc = peer_change(c, {pfx("fd00::3/128"), pfx("10.10.3.5/32")});
    first.peers = {pa, pb, pc};
    set_ok(wg, first);

    const Peers want = expected_peers(first);
    auto live = read_ok(wg, kIf);
    CHECK(live.device.name == kIf);
    CHECK(live.device.public_key == sk.public_key());
    CHECK(live.device.listen_port == 51820);
    CHECK(live.fwmark == 0x57u);
    CHECK(live.device.peers == want);
    CHECK(live.stats.size() == 3);
    check_with_wg_show(ns, want);

    SECTION("applying the same peers again changes nothing") {
        WgDeviceChange again = first;
        again.replace_peers = false;
        again.private_key.reset();
        set_ok(wg, again);
        auto live2 = read_ok(wg, kIf);
        CHECK(live2.device == live.device);
        CHECK(live2.fwmark == live.fwmark);
    }
    SECTION("a change without device fields leaves key, port and fwmark alone") {
        WgDeviceChange touch;
        touch.ifname = kIf;
        WgPeerChange ka;
        ka.public_key = a;
        ka.keepalive = 0;  // off
        touch.peers = {ka};
        set_ok(wg, touch);
        auto live2 = read_ok(wg, kIf);
        CHECK(live2.device.public_key == sk.public_key());
        CHECK(live2.device.listen_port == 51820);
        CHECK(live2.fwmark == 0x57u);
        Peers w = want;
        w[a].keepalive = 0;
        CHECK(live2.device.peers == w);
    }
    SECTION("removing one peer leaves the others as they were") {
        WgDeviceChange rm;
        rm.ifname = kIf;
        rm.peers = {removal(b)};
        set_ok(wg, rm);
        Peers w = want;
        w.erase(b);
        auto live2 = read_ok(wg, kIf);
        CHECK(live2.device.peers == w);
        CHECK(live2.stats.count(b) == 0);
        check_with_wg_show(ns, w);
    }
    SECTION("update_only does not create a missing peer; allowed IPs are added unless replaced") {
        WgDeviceChange up;
        up.ifname = kIf;
        WgPeerChange ghost = peer_change(pubkey(), {pfx("10.99.0.0/16")});
        ghost.update_only = true;
        WgPeerChange add;
        add.public_key = c;
        add.allowed_ips = {pfx("10.10.4.0/24")};
        up.peers = {ghost, add};
        set_ok(wg, up);
        Peers w = want;
        w[c].allowed_ips.insert(pfx("10.10.4.0/24"));
        CHECK(read_ok(wg, kIf).device.peers == w);
    }
    SECTION("fwmark 0 turns the mark off") {
        WgDeviceChange off;
        off.ifname = kIf;
        off.fwmark = 0;
        set_ok(wg, off);
        CHECK_FALSE(read_ok(wg, kIf).fwmark);
    }

    REQUIRE(wg.delete_device(kIf).is_ok());
    CHECK(wg.list_devices().empty());
}

TEST_CASE("thousands of allowed IPs span several messages and are replaced on the first chunk only", "[kernel]") {
    if (!kernel_ready()) return;
    Netns ns;
    InNetns in(ns);
    WgGenl wg;
    REQUIRE(wg.create_device(kIf).is_ok());

    Key big = pubkey(), small = pubkey();
    WgDeviceChange load;
    load.ifname = kIf;
    load.private_key = SecretKey::generate();
    load.replace_peers = true;
    WgPeerChange pbig = peer_change(big, many_v6(1, 0, 3000));
    pbig.endpoint = Endpoint{"192.0.2.9", 9};
    WgPeerChange psmall = peer_change(small, {pfx("10.20.0.0/16")});
    load.peers = {pbig, psmall};
    // The premise: this change needs several SET messages (and the dump several replies).
    auto msgs = wgf::linux_::build_set_device(load, 0x20);
    REQUIRE(msgs.is_ok());
    REQUIRE(msgs->size() > 3);
    set_ok(wg, load);

    Peers want = expected_peers(load);
    auto live = read_ok(wg, kIf);
    CHECK(live.device.peers.at(big).allowed_ips.size() == 3000);
    CHECK(live.device.peers == want);
    check_with_wg_show(ns, want);

    // A replacement that also spans several messages: if REPLACE_ALLOWEDIPS travelled with every
    // chunk only the last chunk would survive; without it the old 3000 would remain.
    WgDeviceChange replace;
    replace.ifname = kIf;
    replace.peers = {peer_change(big, many_v6(2, 0, 2500))};
    set_ok(wg, replace);
    want[big].allowed_ips = wgf::model::PrefixSet(many_v6(2, 0, 2500));
    auto live2 = read_ok(wg, kIf);
    CHECK(live2.device.peers.at(big).allowed_ips.size() == 2500);
    CHECK(live2.device.peers == want);
    check_with_wg_show(ns, want);
}

TEST_CASE("replace_peers in a change of many messages keeps exactly the change's peers", "[kernel]") {
    if (!kernel_ready()) return;
    Netns ns;
    InNetns in(ns);
    WgGenl wg;
    REQUIRE(wg.create_device(kIf).is_ok());

    WgDeviceChange before;
    before.ifname = kIf;
    before.replace_peers = true;
    for (unsigned i = 0; i < 50; ++i) before.peers.push_back(peer_change(pubkey(), many_v6(3, i * 2, 2)));
    set_ok(wg, before);
    REQUIRE(read_ok(wg, kIf).device.peers.size() == 50);

    // If REPLACE_PEERS travelled in every message, only the last message's peers would remain.
    WgDeviceChange after;
    after.ifname = kIf;
    after.replace_peers = true;
    for (unsigned i = 0; i < 400; ++i) {
        WgPeerChange p = peer_change(pubkey(), many_v6(4, i * 4, 4));
        p.endpoint = Endpoint{"192.0.2.10", static_cast<uint16_t>(10000 + i)};
        after.peers.push_back(p);
    }
    auto msgs = wgf::linux_::build_set_device(after, 0x20);
    REQUIRE(msgs.is_ok());
    REQUIRE(msgs->size() > 3);
    set_ok(wg, after);
    auto live = read_ok(wg, kIf);
    CHECK(live.device.peers.size() == 400);
    CHECK(live.device.peers == expected_peers(after));
}
