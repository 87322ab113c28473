// apply on the fakes: failures stop the apply and say what was and was not done; and the property
// that must hold everywhere: after applying a plan, a fresh diff is empty.
#include <random>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "plan/diff.hpp"

using namespace wgf;
using namespace wgf::test;

TEST_CASE("read_live: an interface of the same name that is not WireGuard is refused, not taken over", "[apply]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    m.links.links["wg0"] = backend::LinkLive{"wg0", 7, "dummy", 1500, true};
    auto b = m.backends();
    auto live = apply::read_live(b, desired, m.owned, m.now);
    REQUIRE_FALSE(live);
    CHECK(live.error().message == "interface wg0 exists but is not a WireGuard device; wg-fleet will not take it over");
}

TEST_CASE("apply: a failing set leaves later operations undone and names the error", "[apply]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    desired.routes.insert(model::Route{pfx("10.20.0.0/16"), "wg0"});
    auto p = m.plan_for(desired);
    m.wg.fail_next = backend::errno_error(ENOSPC, "set WireGuard device wg0");
    auto b = m.backends();
    auto r = apply::apply_plan(b, p, m.keys, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->message == "set WireGuard device wg0: No space left on device (ENOSPC)");
    // create_device succeeded; the batched key/port/peer set failed; nothing after it ran.
    REQUIRE(r.done.size() == 1);
    CHECK(r.done[0] == "+ device wg0 (fleet f)");
    CHECK(r.not_done.size() == p.ops.size() - 1);
    CHECK(m.links.routes.empty());
    // The next run picks up where it stopped and converges.
    m.owned = {};
    REQUIRE(m.converge(desired).ok());
    CHECK(m.plan_for(desired).empty());
}

namespace {

// A random host state over a small universe of peers, prefixes, endpoints, rules and files, so
// that two draws overlap often and every kind of difference occurs.
model::HostState random_state(std::mt19937& rng, MemKeys& keys) {
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    std::vector<model::WgPeer> peers;
    std::set<std::string> taken;
    int npeers = pick(6);
    for (int i = 0; i < npeers; ++i) {
        int id = pick(8);
        std::vector<std::string> ips;
        int nips = 1 + pick(3);
        for (int j = 0; j < nips; ++j) {
            std::string ip = "10." + std::to_string(pick(6)) + ".0.0/24";
            if (taken.insert(ip).second) ips.push_back(ip);  // one prefix belongs to one peer
        }
        // WireGuard cannot clear an endpoint: a peer has one in every draw or in none.
        std::optional<std::string> endpoint;
        if (id % 2) endpoint = "192.0.2." + std::to_string(1 + pick(3)) + ":51820";
        peers.push_back(peer(id, ips, endpoint, pick(2) ? 25 : 0));
    }
    auto hs = host(keys, peers, pick(2) ? 51820 : 51821);
    auto& w = hs.interfaces.at("wg0");
    w.addresses.clear();
    for (int i = 0, n = pick(3); i < n; ++i) w.addresses.insert(pfx("fd00:" + std::to_string(1 + pick(3)) + "::1/40"));
    // Always given: a device keeps the MTU it has when the fleet names none.
    w.mtu = pick(2) ? 1420 : 1380;
    for (int i = 0, n = pick(3); i < n; ++i) hs.routes.insert(model::Route{pfx("172.16." + std::to_string(pick(4)) + ".0/24"), "wg0"});
    for (int i = 0, n = pick(3); i < n; ++i) {
        model::FwRule r{"rule-" + std::to_string(pick(3)),
                        model::FwKind::accept_udp,
                        model::Proto::udp,
                        static_cast<uint16_t>(51820 + pick(2)),
                        "",
                        "",
                        {},
                        0};
        hs.firewall[r.id] = r;
    }
    if (pick(2))
        hs.files.emplace("/run/h",
                         model::ManagedFile{"/run/h", std::string(model::kFileMarker) + "\n" + std::to_string(pick(3)) + "\n", 0644});
    if (pick(2)) hs.sysctls["net/ipv4/ip_forward"] = "1";
    return hs;
}

}  // namespace

TEST_CASE("apply: property — from any state, applying the plan converges: a fresh diff is empty", "[apply][property]") {
    std::mt19937 rng(20261121);
    for (int round = 0; round < 300; ++round) {
        FakeMachine m;
        auto first = random_state(rng, m.keys);
        REQUIRE(m.converge(first).ok());
        // Drift: a random second state is the new desired one; the live state is the first.
        auto second = random_state(rng, m.keys);
        auto r = m.converge(second);
        INFO("round " << round);
        REQUIRE(r.ok());
        // Checked independently of diff: what the machine now holds equals what was desired.
        auto b = m.backends();
        auto live = apply::read_live(b, second, m.owned, m.now);
        REQUIRE(live);
        const model::HostState& got = live->state;
        if (got != second) {
            // Say which part differs; the full states are in the plan below.
            CHECK(got.routes == second.routes);
            CHECK(got.sysctls == second.sysctls);
            CHECK(got.firewall == second.firewall);
            CHECK(got.files == second.files);
            for (const auto& [n, w] : second.interfaces) {
                const auto& g = got.interfaces.at(n);
                INFO("port " << (g.listen_port == w.listen_port) << " key " << (g.public_key == w.public_key) << " mtu " << (g.mtu == w.mtu)
                             << " up " << (g.up == w.up) << " addrs " << (g.addresses == w.addresses));
                for (const auto& [k, p] : w.peers) {
                    auto gp = g.peers.find(k);
                    if (gp == g.peers.end()) {
                        INFO("missing peer " << k.base64());
                        CHECK(false);
                        continue;
                    }
                    INFO("peer ep " << (gp->second.endpoint == p.endpoint) << " ka " << (gp->second.keepalive == p.keepalive) << " ips "
                                    << (gp->second.allowed_ips == p.allowed_ips));
                    CHECK(gp->second == p);
                }
                CHECK(g == w);
            }
        }
        CHECK(got == second);
        auto again = m.plan_for(second);
        std::string left;
        for (const auto& op : again.ops) left += plan::describe(op) + "\n";
        INFO(left);
        CHECK(again.empty());
    }
}

TEST_CASE("apply: firewall damage from the live read is planned as repairs, which one firewall batch carries out", "[apply]") {
    using What = model::FwDamage::What;
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    REQUIRE(m.converge(desired).ok());
    m.firewall.damage = {model::FwDamage{.what = What::rule, .handle = 7, .name = {}, .decoded = std::nullopt},
                         model::FwDamage{.what = What::chain, .handle = 0, .name = "input", .decoded = std::nullopt}};
    auto p = m.plan_for(desired);
    std::vector<std::string> lines;
    for (const auto& op : p.ops) lines.push_back(plan::describe(op));
    CHECK(lines == std::vector<std::string>{"- firewall rule handle 7 (not as wg-fleet builds it)",
                                            "~ firewall chain input (not as wg-fleet builds it)"});
    const size_t batches = m.firewall.batches.size();
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.firewall.batches.size() == batches + 1);
    CHECK(m.firewall.damage.empty());
    CHECK(m.plan_for(desired).ops.empty());
}

TEST_CASE("diff: a renamed device takes the old one's port only after the old one is gone", "[apply]") {
    FakeMachine m;
    auto a = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    REQUIRE(m.converge(a).ok());
    auto renamed = a;
    auto node = renamed.interfaces.extract("wg0");
    node.key() = "wg1";
    node.mapped().name = "wg1";
    renamed.interfaces.insert(std::move(node));
    auto position = [](const plan::Plan& p, auto match) {
        for (size_t i = 0; i < p.ops.size(); ++i)
            if (match(p.ops[i])) return i;
        FAIL("no such operation");
        return p.ops.size();
    };
    auto deleted = [](const plan::Op& op) {
        const auto* d = std::get_if<plan::OpDeleteDevice>(&op);
        return d && d->ifname == "wg0";
    };
    auto port_set = [](const plan::Op& op) {
        const auto* s = std::get_if<plan::OpSetListenPort>(&op);
        return s && s->ifname == "wg1";
    };
    // The same port: bound by wg0 until it is deleted (the kernel says EADDRINUSE before).
    auto same = m.plan_for(renamed);
    CHECK(position(same, port_set) > position(same, deleted));
    // Another port: set with the new device's key, as always.
    renamed.interfaces.at("wg1").listen_port = 51821;
    auto other = m.plan_for(renamed);
    CHECK(position(other, port_set) < position(other, deleted));
    renamed.interfaces.at("wg1").listen_port = 51820;
    REQUIRE(m.converge(renamed).ok());
    auto left = m.plan_for(renamed);
    std::string ops;
    for (const auto& op : left.ops) ops += plan::describe(op) + "\n";
    INFO(ops);
    CHECK(left.empty());
}
