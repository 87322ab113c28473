// diff and order on the fakes: the minimal-change rules of the product.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "plan/diff.hpp"

using namespace wgf;
using namespace wgf::test;
using plan::Op;

namespace {

template <class T>
std::vector<const T*> ops_of(const plan::Plan& p) {
    std::vector<const T*> out;
    for (const auto& op : p.ops)
        if (auto* o = std::get_if<T>(&op)) out.push_back(o);
    return out;
}

std::vector<std::string> kinds(const plan::Plan& p) {
    std::vector<std::string> out;
    for (const auto& op : p.ops) out.emplace_back(plan::kind(op));
    return out;
}

}  // namespace

TEST_CASE("diff: a new device is created, keyed, brought up, peered and addressed, in that order", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "10.0.0.2:51820"), peer(2, {"fd00:1:3::/96"})});
    desired.routes.insert(model::Route{pfx("10.20.0.0/16"), "wg0"});
    auto p = m.plan_for(desired);
    CHECK(kinds(p) == std::vector<std::string>{"create_device", "set_private_key", "set_listen_port", "set_up", "add_peer", "add_peer",
                                               "add_address", "add_route", "set_sysctl"});
    CHECK(plan::describe(p.ops[0]) == "+ device wg0 (fleet f)");
    CHECK(plan::disruption(p.ops[1]) == plan::Disruption::none);  // a new device has no session to reset
    CHECK(plan::describe(p.ops[7]) == "+ route 10.20.0.0/16 dev wg0");
    CHECK(plan::describe(p.ops[8]) == "~ sysctl net/ipv6/conf/all/forwarding 0 -> 1");
}

TEST_CASE("diff: after converging, the same desired state plans nothing", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "10.0.0.2:51820"), peer(2, {"fd00:1:3::/96"})});
    REQUIRE(m.converge(desired).ok());
    auto again = m.plan_for(desired);
    INFO(plan::summarize(again));
    CHECK(again.empty());
    CHECK(plan::summarize(again) == "No changes: the node matches the fleet.");
}

TEST_CASE("diff: one changed peer gives exactly one peer op, key and port are not set again", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "10.0.0.2:51820"), peer(2, {"fd00:1:3::/96"}), peer(3, {"fd00:1:4::/96"})});
    REQUIRE(m.converge(desired).ok());
    auto& peers = desired.interfaces.at("wg0").peers;
    peers.at(key_of(1)).endpoint = ep("10.0.0.9:51820");
    auto p = m.plan_for(desired);
    REQUIRE(p.ops.size() == 1);
    auto ups = ops_of<plan::OpUpdatePeer>(p);
    REQUIRE(ups.size() == 1);
    CHECK(ups[0]->public_key == key_of(1));
    CHECK(ups[0]->endpoint == ep("10.0.0.9:51820"));
    CHECK_FALSE(ups[0]->allowed_ips);
    CHECK_FALSE(ups[0]->keepalive);
    CHECK(plan::disruption(p.ops[0]) == plan::Disruption::peer_session);
    CHECK(plan::describe(p.ops[0]) ==
          "~ peer node1 (" + key_of(1).short_str() + ") on wg0: endpoint 10.0.0.2:51820 -> 10.0.0.9:51820  [disrupts one peer's session]");

    // Applying it sends one peer to the device, as an update that never creates.
    auto b = m.backends();
    m.wg.sets.clear();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    REQUIRE(m.wg.sets.size() == 1);
    REQUIRE(m.wg.sets[0].peers.size() == 1);
    CHECK(m.wg.sets[0].peers[0].update_only);
    CHECK_FALSE(m.wg.sets[0].replace_peers);
    CHECK_FALSE(m.wg.sets[0].private_key);
    CHECK_FALSE(m.wg.sets[0].listen_port);
}

TEST_CASE("diff: adding a peer disturbs no other peer", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "10.0.0.2:51820")});
    REQUIRE(m.converge(desired).ok());
    auto p2 = peer(2, {"fd00:1:3::/96"});
    desired.interfaces.at("wg0").peers.emplace(p2.public_key, p2);
    auto p = m.plan_for(desired);
    REQUIRE(p.ops.size() == 1);
    REQUIRE(ops_of<plan::OpAddPeer>(p).size() == 1);
    CHECK(plan::disruption(p.ops[0]) == plan::Disruption::none);
    CHECK(plan::summarize(p) == "Plan: 1 to add, 0 to change, 0 to remove; disrupts no session.");
}

TEST_CASE("diff: a peer removed from the fleet is removed, a foreign peer is only reported unless exclusive", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}), peer(2, {"fd00:1:3::/96"})});
    REQUIRE(m.converge(desired).ok());
    // Someone adds a peer by hand (`wg set wg0 peer ...`).
    backend::WgDeviceChange hand{"wg0", {},    {},
                                 {},    false, {backend::WgPeerChange{key_of(99), false, false, {}, {}, true, {pfx("10.9.9.9/32")}}}};
    REQUIRE(m.wg.set_device(hand));
    desired.interfaces.at("wg0").peers.erase(key_of(2));
    auto p = m.plan_for(desired);
    auto rm = ops_of<plan::OpRemovePeer>(p);
    REQUIRE(rm.size() == 1);
    CHECK(rm[0]->public_key == key_of(2));
    // The fleet no longer names it: the name comes from what the last apply recorded.
    CHECK(labels_of(desired).peer_name("wg0", key_of(2)).empty());
    CHECK(rm[0]->name == "node2");
    CHECK(plan::describe(p.ops[0]) == "- peer node2 (" + key_of(2).short_str() + ") on wg0  [disrupts one peer's session]");
    // A record from before names were kept: the key alone.
    m.owned.names.clear();
    auto unnamed_plan = m.plan_for(desired);  // ops_of points into it
    auto unnamed = ops_of<plan::OpRemovePeer>(unnamed_plan);
    REQUIRE(unnamed.size() == 1);
    CHECK(unnamed[0]->name.empty());
    REQUIRE(p.foreign.size() == 1);
    CHECK(p.foreign[0] == key_of(99).base64() + " on wg0");

    plan::DiffOptions exclusive;
    exclusive.exclusive.insert("wg0");
    auto px = m.plan_for(desired, exclusive);
    auto rmx = ops_of<plan::OpRemovePeer>(px);
    REQUIRE(rmx.size() == 2);
    CHECK(std::count_if(rmx.begin(), rmx.end(), [](auto* o) { return o->foreign; }) == 1);
    CHECK(px.foreign.empty());
}

TEST_CASE("diff: a prefix moving from peer A to peer B is released by A before B claims it", "[diff][move]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"10.1.0.0/24", "10.2.0.0/24"}), peer(2, {"10.3.0.0/24"})});
    REQUIRE(m.converge(desired).ok());
    auto& peers = desired.interfaces.at("wg0").peers;
    peers.at(key_of(1)).allowed_ips = {pfx("10.1.0.0/24")};
    peers.at(key_of(2)).allowed_ips = {pfx("10.2.0.0/24"), pfx("10.3.0.0/24")};
    auto p = m.plan_for(desired);
    auto ups = ops_of<plan::OpUpdatePeer>(p);
    REQUIRE(ups.size() == 2);
    CHECK(ups[0]->public_key == key_of(1));  // release first
    CHECK(*ups[0]->allowed_ips == model::PrefixSet{pfx("10.1.0.0/24")});
    CHECK(ups[1]->public_key == key_of(2));
    CHECK(plan::describe(p.ops[0]) == "~ peer node1 (" + key_of(1).short_str() + ") on wg0: allowed-ips -10.2.0.0/24");
    CHECK(plan::describe(p.ops[1]) == "~ peer node2 (" + key_of(2).short_str() + ") on wg0: allowed-ips +10.2.0.0/24");
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: two peers swapping prefixes both release before either claims", "[diff][move]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"10.1.0.0/24", "10.9.0.0/24"}), peer(2, {"10.2.0.0/24", "10.8.0.0/24"})});
    REQUIRE(m.converge(desired).ok());
    auto& peers = desired.interfaces.at("wg0").peers;
    peers.at(key_of(1)).allowed_ips = {pfx("10.2.0.0/24"), pfx("10.9.0.0/24")};
    peers.at(key_of(2)).allowed_ips = {pfx("10.1.0.0/24"), pfx("10.8.0.0/24")};
    auto p = m.plan_for(desired);
    auto ups = ops_of<plan::OpUpdatePeer>(p);
    REQUIRE(ups.size() == 4);
    // Releases keep only what stays.
    CHECK(*ups[0]->allowed_ips == model::PrefixSet{pfx("10.9.0.0/24")});
    CHECK(*ups[1]->allowed_ips == model::PrefixSet{pfx("10.8.0.0/24")});
    CHECK(ups[2]->added == std::vector<model::Prefix>{pfx("10.2.0.0/24")});
    CHECK(ups[3]->added == std::vector<model::Prefix>{pfx("10.1.0.0/24")});
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: a roaming peer with a live session keeps its live endpoint", "[diff][roaming]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "198.51.100.7:51820")});
    REQUIRE(m.converge(desired).ok());
    // The peer roams: the kernel learns its new address from authenticated packets.
    auto& live = m.wg.devices.at("wg0");
    live.device.peers.at(key_of(1)).endpoint = ep("203.0.113.5:40000");
    live.stats[key_of(1)].last_handshake = m.now - 30;
    auto p = m.plan_for(desired);
    CHECK(p.empty());
    REQUIRE(p.kept.size() == 1);
    CHECK(p.kept[0].find("roamed") != std::string::npos);

    // When the YAML changes the endpoint, it is applied even with a live session.
    desired.interfaces.at("wg0").peers.at(key_of(1)).endpoint = ep("198.51.100.8:51820");
    auto changed = m.plan_for(desired);
    REQUIRE(changed.ops.size() == 1);
    CHECK(ops_of<plan::OpUpdatePeer>(changed)[0]->endpoint == ep("198.51.100.8:51820"));
}

TEST_CASE("diff: a roamed endpoint is reset only when the desired endpoint changed, not when the handshake went stale", "[diff][roaming]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "198.51.100.7:51820")});
    REQUIRE(m.converge(desired).ok());
    auto& live = m.wg.devices.at("wg0");
    live.device.peers.at(key_of(1)).endpoint = ep("203.0.113.5:40000");
    for (int64_t age : {int64_t{3600}, int64_t{86400}}) {
        live.stats[key_of(1)].last_handshake = m.now - age;
        auto stale = m.plan_for(desired);
        CHECK(stale.empty());
        REQUIRE(stale.kept.size() == 1);
        CHECK(stale.kept[0].find("the desired endpoint is unchanged") != std::string::npos);
    }
    live.stats[key_of(1)].last_handshake = 0;  // never: still where the peer was last seen
    CHECK(m.plan_for(desired).empty());

    // A changed desired endpoint is set, whatever the handshake's age.
    desired.interfaces.at("wg0").peers.at(key_of(1)).endpoint = ep("198.51.100.8:51820");
    auto changed = m.plan_for(desired);
    REQUIRE(ops_of<plan::OpUpdatePeer>(changed).size() == 1);
    CHECK(ops_of<plan::OpUpdatePeer>(changed)[0]->endpoint == ep("198.51.100.8:51820"));
    CHECK(plan::disruption(changed.ops[0]) == plan::Disruption::peer_session);
}

TEST_CASE("diff: with no endpoint recorded (first run, state lost), a live session keeps a roamed endpoint, a stale one does not",
          "[diff][roaming]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "198.51.100.7:51820")});
    REQUIRE(m.converge(desired).ok());
    m.owned = {};  // state.json lost
    auto& live = m.wg.devices.at("wg0");
    live.device.peers.at(key_of(1)).endpoint = ep("203.0.113.5:40000");
    live.stats[key_of(1)].last_handshake = m.now - 30;
    auto alive = m.plan_for(desired);
    CHECK(ops_of<plan::OpUpdatePeer>(alive).empty());
    REQUIRE(alive.kept.size() == 1);
    CHECK(alive.kept[0].find("nothing recorded") != std::string::npos);

    live.stats[key_of(1)].last_handshake = m.now - 3600;
    auto stale = m.plan_for(desired);
    REQUIRE(ops_of<plan::OpUpdatePeer>(stale).size() == 1);
    CHECK(ops_of<plan::OpUpdatePeer>(stale)[0]->endpoint == ep("198.51.100.7:51820"));

    // A peer recorded without an endpoint: an endpoint now desired is a change, set at once.
    m.owned = plan::ownership_after(desired);
    m.owned.endpoints.at("wg0").clear();
    live.stats[key_of(1)].last_handshake = m.now - 30;
    auto added = m.plan_for(desired);
    REQUIRE(ops_of<plan::OpUpdatePeer>(added).size() == 1);
    CHECK(ops_of<plan::OpUpdatePeer>(added)[0]->endpoint == ep("198.51.100.7:51820"));
}

TEST_CASE("diff: a new private key or port is a device-wide disruption, addresses move out before in", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    REQUIRE(m.converge(desired).ok());
    m.keys.keys.at("/state/f.key") = model::SecretKey::generate();
    auto& w = desired.interfaces.at("wg0");
    w.public_key = m.keys.keys.at("/state/f.key").public_key();
    w.listen_port = 51821;
    w.addresses = {pfx("fd00:2::1/40")};
    auto p = m.plan_for(desired);
    CHECK(kinds(p) == std::vector<std::string>{"set_private_key", "set_listen_port", "del_address", "add_address"});
    CHECK(plan::summarize(p) == "Plan: 1 to add, 2 to change, 1 to remove; resets every session on 1 device.");
    for (const auto& op : p.ops) CHECK(plan::describe(op).find(m.keys.keys.at("/state/f.key").base64_for_storage()) == std::string::npos);
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: a listen-port change keeps every session and says that peers dialling this node must follow it", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    REQUIRE(m.converge(desired).ok());
    desired.interfaces.at("wg0").listen_port = 51821;
    auto p = m.plan_for(desired);
    REQUIRE(kinds(p) == std::vector<std::string>{"set_listen_port"});
    CHECK(plan::disruption(p.ops[0]) == plan::Disruption::none);
    CHECK(plan::describe(p.ops[0]) ==
          "~ device wg0: listen port 51820 -> 51821 (sessions survive; peers that dial this node reach it only once "
          "their endpoint follows the new port)");
    CHECK(plan::summarize(p) == "Plan: 0 to add, 1 to change, 0 to remove; disrupts no session.");
    // Only a new private key resets every session.
    m.keys.keys.at("/state/f.key") = model::SecretKey::generate();
    desired.interfaces.at("wg0").public_key = m.keys.keys.at("/state/f.key").public_key();
    auto both = m.plan_for(desired);
    REQUIRE(kinds(both) == std::vector<std::string>{"set_private_key", "set_listen_port"});
    CHECK(plan::disruption(both.ops[0]) == plan::Disruption::all_sessions);
    CHECK(plan::disruption(both.ops[1]) == plan::Disruption::none);
}

TEST_CASE("diff: routes, rules and files that are ours converge, others are left alone", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {});
    desired.routes.insert(model::Route{pfx("10.20.0.0/16"), "wg0"});
    model::FwRule accept{"accept-f", model::FwKind::accept_udp, model::Proto::udp, 51820, "", "", {}, 0};
    desired.firewall.emplace(accept.id, accept);
    desired.files.emplace("/run/hosts", model::ManagedFile{"/run/hosts", std::string(model::kFileMarker) + "\nfd00::1 a.f\n", 0644});
    REQUIRE(m.converge(desired).ok());

    desired.routes = {model::Route{pfx("10.21.0.0/16"), "wg0"}};
    desired.firewall.begin()->second.port = 51821;
    desired.files.clear();
    auto p = m.plan_for(desired);
    CHECK(kinds(p) == std::vector<std::string>{"del_route", "add_route", "del_rule", "add_rule", "remove_file"});
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    // The two rule ops went to the firewall as one atomic batch.
    CHECK(m.firewall.batches.back().remove == std::vector<std::string>{"accept-f"});
    CHECK(m.firewall.batches.back().add.size() == 1);
    m.owned = plan::ownership_after(desired);
    CHECK(m.plan_for(desired).empty());

    // A file without our marker that we once wrote is not removed.
    m.files.files["/run/other"] = backend::FileLive{
        .file = {"/run/other", "hand-written\n", 0644}, .has_marker = false, .not_regular = {}, .uid = 0, .gid = 0};
    m.owned.files.insert("/run/other");
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: of interleaved routes each stale one is removed and each new one added, in address order", "[diff]") {
    model::HostState live, desired;
    for (const auto* p : {"10.1.0.0/16", "10.3.0.0/16", "10.5.0.0/16", "10.6.0.0/16"}) live.routes.insert(model::Route{pfx(p), "wg0"});
    for (const auto* p : {"10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16", "10.6.0.0/16", "10.7.0.0/16"})
        desired.routes.insert(model::Route{pfx(p), "wg0"});
    desired.routes.insert(model::Route{pfx("10.6.0.0/16"), "wg1"});  // the same prefix on another device is another route
    auto p = plan::diff(desired, {}, live, {});
    std::vector<std::string> got;
    for (const auto& op : p.ops) {
        if (const auto* del = std::get_if<plan::OpDelRoute>(&op)) got.push_back("- " + del->route.dst.str() + " " + del->route.dev);
        if (const auto* add = std::get_if<plan::OpAddRoute>(&op)) got.push_back("+ " + add->route.dst.str() + " " + add->route.dev);
    }
    CHECK(got == std::vector<std::string>{"- 10.1.0.0/16 wg0", "- 10.5.0.0/16 wg0", "+ 10.2.0.0/16 wg0", "+ 10.4.0.0/16 wg0",
                                          "+ 10.6.0.0/16 wg1", "+ 10.7.0.0/16 wg0"});
    CHECK(got.size() == p.ops.size());
}

TEST_CASE("diff: an interface that left the fleet is deleted last, without separate route ops", "[diff]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"fd00:1:2::/56"})});
    desired.routes.insert(model::Route{pfx("10.20.0.0/16"), "wg0"});
    REQUIRE(m.converge(desired).ok());
    model::HostState nothing;
    auto p = m.plan_for(nothing);
    CHECK(kinds(p) == std::vector<std::string>{"delete_device"});
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.wg.devices.empty());
    CHECK(m.links.routes.empty());
}

TEST_CASE("diff: a peer trading a prefix for a free one is one update, not two", "[diff][move]") {
    FakeMachine m;
    auto desired = host(m.keys, {peer(1, {"10.1.0.0/24", "10.2.0.0/24"}), peer(2, {"10.3.0.0/24"})});
    REQUIRE(m.converge(desired).ok());
    desired.interfaces.at("wg0").peers.at(key_of(1)).allowed_ips = {pfx("10.1.0.0/24"), pfx("10.4.0.0/24")};
    auto p = m.plan_for(desired);
    REQUIRE(p.ops.size() == 1);
    CHECK(plan::describe(p.ops[0]) == "~ peer node1 (" + key_of(1).short_str() + ") on wg0: allowed-ips +10.4.0.0/24 -10.2.0.0/24");
    auto b = m.backends();
    m.wg.sets.clear();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    REQUIRE(m.wg.sets.size() == 1);
    CHECK(m.wg.sets[0].peers.size() == 1);
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: many moves on one device: each taken prefix is released first, each free one is one update", "[diff][move]") {
    // Enough peers gain prefixes that the diff switches from scanning the peers to an index of
    // who holds what; the answer must be the same either way.
    FakeMachine m;
    std::vector<model::WgPeer> start;
    for (int i = 1; i <= 12; ++i) start.push_back(peer(i, {fmt::format("10.{}.0.0/24", i), fmt::format("10.{}.1.0/24", i)}));
    auto desired = host(m.keys, start);
    REQUIRE(m.converge(desired).ok());
    auto& peers = desired.interfaces.at("wg0").peers;
    // Peers 1..8 in a ring: each gives up its .1 prefix and takes the next one's.
    for (int i = 1; i <= 8; ++i)
        peers.at(key_of(i)).allowed_ips = {pfx(fmt::format("10.{}.0.0/24", i)), pfx(fmt::format("10.{}.1.0/24", i % 8 + 1))};
    // Peers 9..12 trade their .1 prefix for a free one.
    for (int i = 9; i <= 12; ++i)
        peers.at(key_of(i)).allowed_ips = {pfx(fmt::format("10.{}.0.0/24", i)), pfx(fmt::format("10.{}.2.0/24", i))};
    auto p = m.plan_for(desired);
    std::string lines;
    for (const auto& op : p.ops) lines += plan::describe(op) + "\n";
    INFO(lines);
    auto ups = ops_of<plan::OpUpdatePeer>(p);
    std::map<model::Key, int> per_peer;
    for (const auto* u : ups) ++per_peer[u->public_key];
    for (int i = 1; i <= 8; ++i) CHECK(per_peer[key_of(i)] == 2);
    for (int i = 9; i <= 12; ++i) CHECK(per_peer[key_of(i)] == 1);
    // Every release of the ring comes before every claim.
    size_t last_release = 0, first_claim = ups.size();
    for (size_t k = 0; k < ups.size(); ++k) {
        if (!ups[k]->removed.empty()) last_release = std::max(last_release, k);
        if (!ups[k]->added.empty() && ups[k]->removed.empty()) first_claim = std::min(first_claim, k);
    }
    CHECK(last_release < first_claim);
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, p, m.keys, nullptr).ok());
    CHECK(m.plan_for(desired).empty());
}

TEST_CASE("diff: among 10,000 forwards, adding or removing one is one map element op, named by the forward", "[diff][forwards]") {
    FakeMachine m;
    auto desired = host(m.keys, {});
    auto forward = [](int i) {
        return model::FwRule{.id = fmt::format("dnat-f{}-v4", i),
                             .kind = model::FwKind::dnat,
                             .proto = i % 2 ? model::Proto::udp : model::Proto::tcp,
                             .port = static_cast<uint16_t>(1024 + i),
                             .iif = {},
                             .oif = {},
                             .to = model::IpAddr::parse(fmt::format("10.99.{}.{}", i >> 8, i & 255)),
                             .to_port = 80};
    };
    for (int i = 0; i < 10000; ++i) desired.firewall.emplace(forward(i).id, forward(i));
    REQUIRE(m.converge(desired).ok());
    CHECK(m.plan_for(desired).empty());

    desired.firewall.emplace(forward(10000).id, forward(10000));
    auto added = m.plan_for(desired);
    REQUIRE(added.ops.size() == 1);
    REQUIRE(ops_of<plan::OpAddRule>(added).size() == 1);
    CHECK(plan::describe(added.ops[0]) == "+ firewall map element dnat-f10000-v4: dnat tcp dport 11024 to 10.99.39.16:80");
    auto b = m.backends();
    REQUIRE(apply::apply_plan(b, added, m.keys, nullptr).ok());
    CHECK(m.firewall.batches.back().remove.empty());
    CHECK(m.firewall.batches.back().add.size() == 1);

    desired.firewall.erase("dnat-f17-v4");
    auto removed = m.plan_for(desired);
    REQUIRE(removed.ops.size() == 1);
    REQUIRE(ops_of<plan::OpDelRule>(removed).size() == 1);
    CHECK(plan::describe(removed.ops[0]) == "- firewall map element dnat-f17-v4: dnat udp dport 1041 to 10.99.0.17:80");

    // A changed target is the element's removal and its addition, both by the forward's name.
    desired.firewall.at("dnat-f3-v4").to = model::IpAddr::parse("10.99.9.9");
    auto changed = m.plan_for(desired);
    std::vector<std::string> lines;
    for (const auto& op : changed.ops) lines.push_back(plan::describe(op));
    CHECK(lines == std::vector<std::string>{"- firewall map element dnat-f17-v4: dnat udp dport 1041 to 10.99.0.17:80",
                                            "- firewall map element dnat-f3-v4: dnat udp dport 1027 to 10.99.0.3:80",
                                            "+ firewall map element dnat-f3-v4: dnat udp dport 1027 to 10.99.9.9:80"});
}

// diff_rules walks the live and the desired rules together (both ordered by id); the definition
// it replaced looked every id up in the other map. Interleaved ids of every case: kept, changed,
// only live, only desired.
TEST_CASE("diff: the firewall rules by one walk plan what a lookup of each id planned", "[diff][forwards]") {
    FakeMachine m;
    auto live = host(m.keys, {});
    auto desired = live;
    for (int i = 0; i < 400; ++i) {
        model::FwRule r{.id = fmt::format("accept-{:03}", (i * 37) % 400), .kind = model::FwKind::accept_udp};
        r.port = static_cast<uint16_t>(1000 + i);
        switch (i % 4) {
            case 0:
                live.firewall.emplace(r.id, r);
                desired.firewall.emplace(r.id, r);
                break;
            case 1:
                live.firewall.emplace(r.id, r);
                r.port = static_cast<uint16_t>(r.port + 1000);
                desired.firewall.emplace(r.id, r);
                break;
            case 2: live.firewall.emplace(r.id, r); break;
            default: desired.firewall.emplace(r.id, r); break;
        }
    }
    REQUIRE(m.converge(live).ok());
    auto p = m.plan_for(desired);
    std::vector<std::string> want;
    for (const auto& [id, r] : live.firewall) {
        auto it = desired.firewall.find(id);
        if (it == desired.firewall.end() || it->second != r) want.push_back(plan::describe(plan::OpDelRule{id, r}));
    }
    for (const auto& [id, r] : desired.firewall) {
        auto it = live.firewall.find(id);
        if (it == live.firewall.end() || it->second != r) want.push_back(plan::describe(plan::OpAddRule{r}));
    }
    std::vector<std::string> got;
    for (const auto& op : p.ops) got.push_back(plan::describe(op));
    CHECK(want.size() == 400);  // 100 changed (removed and added), 100 only live, 100 only desired
    CHECK(got == want);
}

TEST_CASE("diff: a damaged map or element is planned as a repair that names it", "[diff][forwards]") {
    model::FwRule stray{.id = {},
                        .kind = model::FwKind::dnat,
                        .proto = model::Proto::tcp,
                        .port = 9000,
                        .iif = {},
                        .oif = {},
                        .to = model::IpAddr::parse("192.0.2.66"),
                        .to_port = 90};
    CHECK(plan::describe(plan::OpRepairFirewall{
              model::FwDamage{.what = model::FwDamage::What::element, .handle = 0, .name = "fwd4", .decoded = stray}}) ==
          "~ firewall map fwd4 element (not as wg-fleet builds it): dnat tcp dport 9000 to 192.0.2.66:90");
    CHECK(plan::describe(plan::OpRepairFirewall{
              model::FwDamage{.what = model::FwDamage::What::map, .handle = 0, .name = "fwd6", .decoded = std::nullopt}}) ==
          "~ firewall map fwd6 or its dnat rule (missing or not as wg-fleet builds it)");
}

namespace {

// An exit node's additions to host(): the mark, the default routes in their table, the rules.
model::HostState with_exit(model::HostState hs) {
    hs.interfaces.at("wg0").fwmark = model::kExitMark;
    for (const char* dst : {"0.0.0.0/0", "::/0"}) hs.routes.insert(model::Route{.dst = pfx(dst), .dev = "wg0", .table = model::kExitTable});
    for (uint8_t family : {uint8_t{4}, uint8_t{6}}) {
        hs.rules.insert(model::PolicyRule{
            .family = family, .priority = model::kExitSuppressPriority, .table = model::kMainTable, .suppress_prefixlength = 0});
        hs.rules.insert(model::PolicyRule{.family = family,
                                          .priority = model::kExitMarkPriority,
                                          .table = model::kExitTable,
                                          .fwmark = model::kExitMark,
                                          .invert = true});
    }
    return hs;
}

size_t index_of(const plan::Plan& p, const std::string& kind, size_t from = 0) {
    for (size_t i = from; i < p.ops.size(); ++i)
        if (plan::kind(p.ops[i]) == kind) return i;
    return p.ops.size();
}

}  // namespace

TEST_CASE("diff: an exit node's mark comes before its rules, which come after their table's routes, and removal in reverse",
          "[diff][exit]") {
    FakeMachine m;
    const auto plain = host(m.keys, {peer(1, {"fd00:1:2::/56"}, "10.0.0.2:51820")});
    REQUIRE(m.converge(plain).ok());
    const auto exit = with_exit(plain);
    auto p = m.plan_for(exit);
    INFO(plan::summarize(p));
    CHECK(kinds(p) == std::vector<std::string>{"set_fwmark", "add_route", "add_route", "add_policy_rule", "add_policy_rule",
                                               "add_policy_rule", "add_policy_rule"});
    CHECK(plan::describe(p.ops[0]) == "~ device wg0: fwmark (none) -> 0x7767");
    CHECK(plan::describe(p.ops[1]) == "+ route 0.0.0.0/0 dev wg0 table 30567");
    CHECK(plan::describe(p.ops[3]) == "+ ipv4 rule 30566: lookup main suppress_prefixlength 0");
    CHECK(plan::describe(p.ops[4]) == "+ ipv4 rule 30567: not fwmark 0x7767 lookup 30567");
    REQUIRE(m.converge(exit).ok());
    CHECK(m.links.rules.size() == 4);
    CHECK(m.wg.devices.at("wg0").fwmark == model::kExitMark);
    CHECK(m.plan_for(exit).empty());  // applied, a fresh diff is empty

    // exit_node goes: the rules and routes leave before the mark, or the tunnel's own packets
    // would be routed into the tunnel.
    auto back = m.plan_for(plain);
    const size_t mark = index_of(back, "set_fwmark");
    REQUIRE(mark < back.ops.size());
    CHECK(index_of(back, "del_policy_rule") < mark);
    CHECK(index_of(back, "del_route") < mark);
    CHECK(plan::describe(back.ops[mark]) == "~ device wg0: fwmark 0x7767 -> (none)");
    REQUIRE(m.converge(plain).ok());
    CHECK(m.links.rules.empty());
    CHECK(m.links.routes.empty());
    CHECK_FALSE(m.wg.devices.at("wg0").fwmark);
    CHECK(m.plan_for(plain).empty());
}

TEST_CASE("diff: rules in other tables' chains are ours by their mark alone: added, replaced when not as built, removed",
          "[diff][foreign]") {
    using model::ForeignRule;
    const ForeignRule iif{.family = "ip", .table = "filter", .chain = "FORWARD", .id = "iif-wg0", .as_built = true};
    const ForeignRule oif{.family = "ip", .table = "filter", .chain = "FORWARD", .id = "oif-wg0", .as_built = true};
    model::HostState desired, live;
    desired.foreign_rules = {{iif.key(), iif}, {oif.key(), oif}};
    ForeignRule edited = oif;
    edited.as_built = false;
    const ForeignRule stale{.family = "inet", .table = "fw", .chain = "in", .id = "udp-dport-51820", .as_built = true};
    live.foreign_rules = {{oif.key(), edited}, {stale.key(), stale}};
    auto p = plan::diff(desired, {}, live, {});
    auto adds = ops_of<plan::OpAddForeignRule>(p);
    auto dels = ops_of<plan::OpDelForeignRule>(p);
    REQUIRE(adds.size() == 2);
    REQUIRE(dels.size() == 2);
    CHECK(dels[0]->rule == stale);
    CHECK(dels[1]->rule == edited);
    CHECK(adds[0]->rule == iif);
    CHECK(adds[1]->rule == oif);
    // Deletions first, so a replaced rule is never there twice.
    CHECK(std::holds_alternative<plan::OpDelForeignRule>(p.ops.front()));
    CHECK(plan::describe(Op{*adds[0]}) ==
          "+ rule in table ip filter, chain FORWARD (another table's; firewall: foreign_accept): insert iifname \"wg0\" accept comment "
          "\"wg-fleet:iif-wg0\"");
    CHECK(plan::describe(Op{*dels[1]}) ==
          "- rule in table ip filter, chain FORWARD: oifname \"wg0\" accept comment \"wg-fleet:oif-wg0\" (not as wg-fleet builds it)");
    // Once live is as desired, nothing to do.
    live.foreign_rules = desired.foreign_rules;
    CHECK(plan::diff(desired, {}, live, {}).empty());
}
