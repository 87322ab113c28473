// Tries (issue 14) on the fakes: the record's round trip through its text, the "back again"
// verdict (a fresh handshake or traffic since the change, never the handshake's age alone),
// the hold on a rolled-back desired state, what a try refuses, and a rollback that gives the
// live state and the ownership record from before the try back.
#include <catch2/catch.hpp>

#include "apply/try.hpp"
#include "fixture.hpp"
#include "inputs/try_record.hpp"

using namespace wgf;
using namespace wgf::test;

namespace {

model::HostState with_file(model::HostState hs) {
    hs.files["/etc/hosts.d/fleet"] = model::ManagedFile{.path = "/etc/hosts.d/fleet",
                                                        .content = "# Managed by wg-fleet: edits are overwritten.\nx\n"};
    hs.routes.insert(model::Route{.dst = pfx("fd00:9::/64"), .dev = "wg0"});
    hs.firewall["accept-wg0"] = model::FwRule{.id = "accept-wg0", .kind = model::FwKind::accept_udp, .port = 51820};
    return hs;
}

}  // namespace

TEST_CASE("try: the record survives its text, snapshot and ownership included", "[try]") {
    FakeMachine m;
    auto a = with_file(host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})}));
    REQUIRE(m.converge(a).ok());
    m.wg.devices["wg0"].stats[key_of(1)] = {.last_handshake = m.now - 10, .rx_bytes = 500, .tx_bytes = 7};
    auto b = m.backends();
    auto live = apply::read_live(b, a, m.owned, m.now);
    REQUIRE(live);
    auto t = apply::make_try(a, labels_of(a), *live, m.owned, m.now, 120);
    t.probe = "ping -c1 fd00:1::2";
    t.manual = true;
    t.digest = "abc";
    t.pid = 42;
    t.snapshot.foreign_rules["ip filter FORWARD iif-wg0"] = model::ForeignRule{
        .family = "ip", .table = "filter", .chain = "FORWARD", .id = "iif-wg0"};
    CHECK(t.deadline == m.now + 120);
    CHECK(t.snapshot.interfaces.at("wg0").listen_port == 51820);
    CHECK(t.snapshot.files.count("/etc/hosts.d/fleet") == 1);
    // Only peer 1 had a recent handshake: the baseline is the peers that were ok.
    REQUIRE(t.baseline.size() == 1);
    CHECK(t.baseline[0].public_key == key_of(1));
    CHECK(t.baseline[0].rx_bytes == 500);
    const std::string text = inputs::try_record_to_json(t);
    auto back = inputs::try_record_from_json(text);
    REQUIRE(back);
    CHECK(*back == t);
    std::string why;
    CHECK_FALSE(inputs::try_record_from_json("{\"version\": 1}", &why));
    CHECK_FALSE(why.empty());
    // A snapshot that is not one is refused, not misread.
    std::string bad = text;
    auto at = bad.find("\"snapshot\": \"") + 13;
    bad.replace(at, 4, "QUFB");
    CHECK_FALSE(inputs::try_record_from_json(bad));
}

TEST_CASE("try: a peer is back after a handshake newer than the change, or traffic since it", "[try]") {
    const int64_t changed = 1000;
    const apply::PeerBaseline before{.ifname = "wg0", .public_key = key_of(1), .name = "alice", .last_handshake = 990, .rx_bytes = 100};
    // An undisturbed session: the handshake from before the change is young, but says nothing.
    CHECK_FALSE(apply::back_again(before, {.last_handshake = 990, .rx_bytes = 300}, changed, 300));
    // A handshake since the change.
    CHECK(apply::back_again(before, {.last_handshake = 1003, .rx_bytes = 300}, changed, 300));
    // Received bytes grown since the reading right after the change.
    CHECK(apply::back_again(before, {.last_handshake = 990, .rx_bytes = 301}, changed, 300));
    // Counters reset (a device made again): growth from the reading after the change counts.
    CHECK(apply::back_again(before, {.last_handshake = 0, .rx_bytes = 50}, changed, 0));
    CHECK_FALSE(apply::back_again(before, {.last_handshake = 0, .rx_bytes = 0}, changed, 0));

    const std::vector<apply::PeerBaseline> baseline{
        before, {.ifname = "wg0", .public_key = key_of(2), .name = "", .last_handshake = 995, .rx_bytes = 10}};
    std::map<std::string, std::map<model::Key, backend::WgPeerStats>> after{
        {"wg0", {{key_of(1), {990, 300, 0}}, {key_of(2), {995, 10, 0}}}}};
    auto now = after;
    CHECK(apply::not_back(baseline, now, after, changed).size() == 2);
    now["wg0"][key_of(1)].rx_bytes = 400;
    auto missing = apply::not_back(baseline, now, after, changed);
    REQUIRE(missing.size() == 1);
    CHECK(missing[0].find("on wg0") != std::string::npos);
    now["wg0"][key_of(2)].last_handshake = 1001;
    CHECK(apply::not_back(baseline, now, after, changed).empty());
    // A peer gone from the device is not back.
    now["wg0"].erase(key_of(2));
    CHECK(apply::not_back(baseline, now, after, changed).size() == 1);
    // No peer was ok before: nothing to wait for.
    CHECK(apply::not_back({}, now, after, changed).empty());
}

TEST_CASE("try: the hold on a rolled-back desired state", "[try]") {
    CHECK(apply::hold_verdict(std::nullopt, "d1", false, false) == apply::Hold::none);
    CHECK(apply::hold_verdict(std::string("d1"), "d1", false, false) == apply::Hold::held);
    CHECK(apply::hold_verdict(std::string("d1"), "d1", true, false) == apply::Hold::retried);
    CHECK(apply::hold_verdict(std::string("d1"), "d1", false, true) == apply::Hold::retried);
    // The file edited to anything else: the hold goes.
    CHECK(apply::hold_verdict(std::string("d1"), "d2", false, false) == apply::Hold::none);
}

TEST_CASE("try: a key change or a deleted device cannot be taken back", "[try]") {
    plan::Plan p;
    p.ops.emplace_back(plan::OpSetListenPort{"wg0", 51821, 51820, false});
    CHECK_FALSE(apply::cannot_try(p));
    p.ops.emplace_back(plan::OpSetPrivateKey{.ifname = "wg0", .key_file = "/state/f.key", .public_key = key_of(9), .fresh = true});
    CHECK_FALSE(apply::cannot_try(p));
    plan::Plan k;
    k.ops.emplace_back(plan::OpSetPrivateKey{.ifname = "wg0", .key_file = "/state/f.key", .public_key = key_of(9), .fresh = false});
    CHECK(apply::cannot_try(k));
    plan::Plan d;
    d.ops.emplace_back(plan::OpDeleteDevice{"wg1"});
    CHECK(apply::cannot_try(d));
}

TEST_CASE("try: the rollback gives back the live state and the ownership record from before", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    backend::FakeJournal journal;
    auto a = with_file(host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"}, "192.0.2.2:51820")}));
    REQUIRE(m.converge(a).ok());
    state.owned = m.owned;
    auto b = m.backends();
    auto live = apply::read_live(b, a, m.owned, m.now);
    REQUIRE(live);
    const auto before_devices = m.wg.devices.at("wg0").device;
    const auto before_routes = m.links.routes;
    const auto before_rules = m.firewall.rules;
    const auto before_files = m.files.files;
    auto t = apply::make_try(a, labels_of(a), *live, m.owned, m.now, 5);

    // The try: another port, peer 2 gone, peer 3 new, peer 1 elsewhere, another route, no file.
    auto tried = host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.9:51820"), peer(3, {"fd00:1::4/128"})}, 51821);
    tried.routes.insert(model::Route{.dst = pfx("fd00:8::/64"), .dev = "wg0"});
    REQUIRE(m.converge(tried).ok());
    state.owned = m.owned;
    REQUIRE(m.wg.devices.at("wg0").device != before_devices);

    auto r = apply::roll_back(b, m.keys, state, &journal, t, m.now);
    INFO(r.plan.ops.size());
    REQUIRE(r.ok());
    CHECK_FALSE(r.plan.empty());
    CHECK(m.wg.devices.at("wg0").device == before_devices);
    CHECK(m.links.routes == before_routes);
    CHECK(m.firewall.rules == before_rules);
    CHECK(m.files.files.count("/etc/hosts.d/fleet") == 1);
    CHECK(m.files.files.at("/etc/hosts.d/fleet").file.content == before_files.at("/etc/hosts.d/fleet").file.content);
    CHECK(state.owned == t.owned_before);
    CHECK_FALSE(journal.lines.empty());
    // Rolled back once: a second rollback finds nothing to do.
    auto again = apply::roll_back(b, m.keys, state, nullptr, t, m.now);
    REQUIRE(again.ok());
    CHECK(again.plan.empty());
}
