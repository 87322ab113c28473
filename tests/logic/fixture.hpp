// Builders for HostState values and a fake machine (all backends in memory) for logic tests.
#pragma once

#include <map>
#include <string>

#include "apply/keys.hpp"
#include "apply/reconcile.hpp"
#include "backend/fake.hpp"
#include "model/host_state.hpp"

namespace wgf::test {

inline model::Key key_of(int n) {
    model::Key k;
    k.bytes[0] = static_cast<uint8_t>(n);
    k.bytes[1] = static_cast<uint8_t>(n >> 8);
    k.bytes[31] = 0x5a;
    return k;
}

inline model::Prefix pfx(const std::string& s) { return *model::Prefix::parse(s); }
inline model::Endpoint ep(const std::string& s) { return *model::Endpoint::parse(s); }

inline model::WgPeer peer(int n, std::vector<std::string> ips, std::optional<std::string> endpoint = {}, uint16_t keepalive = 25) {
    model::WgPeer p;
    p.public_key = key_of(n);
    for (auto& s : ips) p.allowed_ips.insert(pfx(s));
    if (endpoint) p.endpoint = ep(*endpoint);
    p.keepalive = keepalive;
    return p;
}

using MemKeys = backend::FakeKeyStore;

// One interface "wg0" of fleet "f" with a key, a port, addresses and the given peers.
inline model::HostState host(const MemKeys& keys, std::vector<model::WgPeer> peers, uint16_t port = 51820) {
    model::HostState hs;
    model::WgInterface w;
    w.name = "wg0";
    w.listen_port = port;
    w.up = true;
    w.public_key = keys.keys.at("/state/f.key").public_key();
    w.addresses = {pfx("fd00:1::1/40")};
    for (auto& p : peers) w.peers.emplace(p.public_key, std::move(p));
    hs.interfaces.emplace("wg0", std::move(w));
    hs.sysctls["net/ipv6/conf/all/forwarding"] = "1";
    return hs;
}

// The labels host() implies: every interface in fleet "f" with key file /state/f.key, each peer
// named after the number its key was made from.
inline model::Labels labels_of(const model::HostState& hs) {
    model::Labels out;
    for (const auto& [name, w] : hs.interfaces) {
        auto& l = out.interfaces[name];
        l.fleet = "f";
        l.private_key_file = "/state/f.key";
        for (const auto& [k, p] : w.peers) l.peer_names.emplace(k, "node" + std::to_string(k.bytes[0] | k.bytes[1] << 8));
    }
    return out;
}

struct FakeMachine {
    backend::FakeWireGuard wg;
    backend::FakeLinks links;
    backend::FakeSysctls sysctls;
    backend::FakeFirewall firewall;
    backend::FakeFiles files;
    backend::FakeCommands commands;
    MemKeys keys;
    plan::Ownership owned;
    int64_t now = 1'000'000;

    FakeMachine() {
        wg.links = &links;
        sysctls.values["net/ipv6/conf/all/forwarding"] = "0";
        sysctls.values["net/ipv4/ip_forward"] = "0";
        keys.keys.emplace("/state/f.key", model::SecretKey::generate());
    }
    apply::Backends backends() { return apply::Backends{wg, links, sysctls, firewall, files, &commands}; }

    plan::Plan plan_for(const model::HostState& desired, const plan::DiffOptions& opts = {}) {
        auto b = backends();
        auto live = apply::read_live(b, desired, owned, now);
        REQUIRE(live);
        return plan::diff(desired, labels_of(desired), live->state, owned, live->facts, opts);
    }

    // plan + apply + record ownership, as `apply` does.
    apply::ApplyResult converge(const model::HostState& desired, const plan::DiffOptions& opts = {}) {
        auto p = plan_for(desired, opts);
        auto b = backends();
        auto r = apply::apply_plan(b, p, keys, nullptr);
        if (r.ok()) owned = plan::ownership_after(desired, labels_of(desired));
        return r;
    }
};

}  // namespace wgf::test
