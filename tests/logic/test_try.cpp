// Tries (issue 14) on the fakes: the record's round trip through its text, the "back again"
// verdict (a fresh handshake or traffic since the change, never the handshake's age alone),
// the hold on a rolled-back desired state, the private keys a try keeps, rollbacks that give the
// live state (a replaced key and a deleted device included) and the ownership record back, one
// check of the verdict, and the held state watch keeps in force.
#include <chrono>

#include <catch2/catch.hpp>

#include "apply/try.hpp"
#include "apply/try_verdict.hpp"
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

// A try made now of `desired`, its snapshot the node's live state as `b` reads it.
apply::TryRecord try_now(FakeMachine& m, apply::Backends& b, const model::HostState& desired, int64_t seconds) {
    auto live = apply::read_live(b, desired, m.owned, m.now);
    REQUIRE(live);
    return apply::make_try(desired, labels_of(desired), *live, m.owned, m.now, seconds);
}

}  // namespace

TEST_CASE("try: the record survives its text, snapshot and ownership included", "[try]") {
    FakeMachine m;
    auto a = with_file(host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})}));
    REQUIRE(m.converge(a).ok());
    m.wg.devices["wg0"].stats[key_of(1)] = {.last_handshake = m.now - 10, .rx_bytes = 500, .tx_bytes = 7};
    auto b = m.backends();
    auto t = try_now(m, b, a, 120);
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
    CHECK_FALSE(t.baseline[0].needs_handshake);
    t.baseline[0].needs_handshake = true;  // survives the text too
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
    // A change that ended the session (a new key on the device): the peer still sends on the
    // old session, which the device receives but cannot answer. Only a new handshake counts.
    auto ended = before;
    ended.needs_handshake = true;
    CHECK_FALSE(apply::back_again(ended, {.last_handshake = 990, .rx_bytes = 301}, changed, 300));
    CHECK(apply::back_again(ended, {.last_handshake = 1003, .rx_bytes = 300}, changed, 300));

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

TEST_CASE("try: the devices whose key a try must keep: a replaced key, a deleted device", "[try]") {
    plan::Plan p;
    p.ops.emplace_back(plan::OpSetListenPort{"wg0", 51821, 51820, false});
    // A key for a device made by the same plan has no session to give back.
    p.ops.emplace_back(plan::OpSetPrivateKey{.ifname = "wg0", .key_file = "/state/f.key", .public_key = key_of(9), .fresh = true});
    CHECK(apply::keys_to_keep(p).empty());
    p.ops.emplace_back(plan::OpSetPrivateKey{.ifname = "wg2", .key_file = "/state/g.key", .public_key = key_of(9), .fresh = false});
    p.ops.emplace_back(plan::OpDeleteDevice{"wg1"});
    CHECK(apply::keys_to_keep(p) == std::set<std::string>{"wg1", "wg2"});
    CHECK(apply::kept_key_path("/var/lib/wg-fleet", "wg1") == "/var/lib/wg-fleet/try-keys/wg1.key");
}

TEST_CASE("try: a replaced private key is kept and given back, with the published key", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    auto a = host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820")});
    REQUIRE(m.converge(a).ok());
    state.owned = m.owned;
    const model::SecretKey old_key = m.keys.keys.at("/state/f.key");
    m.keys.published["/keys/f/n1.pub"] = old_key.public_key();
    m.wg.devices["wg0"].stats[key_of(1)] = {.last_handshake = m.now - 10, .rx_bytes = 500, .tx_bytes = 7};

    // The operator replaces the key file: the try sets the new key on the device.
    const model::SecretKey new_key = model::SecretKey::generate();
    m.keys.keys.insert_or_assign("/state/f.key", new_key);
    auto b = host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820")});
    auto bk = m.backends();
    auto live = apply::read_live(bk, b, m.owned, m.now);
    REQUIRE(live);
    auto p = plan::diff(b, labels_of(b), live->state, m.owned, live->facts);
    REQUIRE(apply::keys_to_keep(p) == std::set<std::string>{"wg0"});
    auto t = apply::start_try(bk, m.keys, b, labels_of(b), *live, p, m.owned,
                              {.state_dir = "/state", .keys_dir = "/keys", .node = "n1", .now = m.now, .seconds = 5});
    REQUIRE(t);
    // The old key is kept, not in the record: the snapshot's label names the kept file.
    const std::string kept = apply::kept_key_path("/state", "wg0");
    REQUIRE(m.keys.keys.count(kept) == 1);
    CHECK(m.keys.keys.at(kept) == old_key);
    CHECK(t->labels.of("wg0").private_key_file == kept);
    CHECK(inputs::try_record_to_json(*t).find(old_key.base64_for_storage()) == std::string::npos);
    CHECK(t->published == std::map<std::string, model::Key>{{"/keys/f/n1.pub", old_key.public_key()}});
    // The new key ends the session: the peer is back only after a new handshake.
    REQUIRE(t->baseline.size() == 1);
    CHECK(t->baseline[0].needs_handshake);
    // The record's text keeps the published keys.
    auto back = inputs::try_record_from_json(inputs::try_record_to_json(*t));
    REQUIRE(back);
    CHECK(back->published == t->published);

    REQUIRE(m.converge(b).ok());
    m.keys.published["/keys/f/n1.pub"] = new_key.public_key();  // as the apply published it
    state.owned = m.owned;
    REQUIRE(m.wg.devices.at("wg0").device.public_key == new_key.public_key());

    auto r = apply::roll_back(bk, m.keys, state, nullptr, *t, m.now);
    REQUIRE(r.ok());
    CHECK(m.wg.devices.at("wg0").device.public_key == old_key.public_key());
    CHECK(m.keys.published.at("/keys/f/n1.pub") == old_key.public_key());
    // The key file is the operator's input: it keeps the key they put there.
    CHECK(m.keys.keys.at("/state/f.key") == new_key);
}

TEST_CASE("try: a deleted device is made again with its key, peers, addresses and routes", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    auto a = with_file(host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})}));
    REQUIRE(m.converge(a).ok());
    state.owned = m.owned;
    const auto before = m.wg.devices.at("wg0").device;
    const auto before_routes = m.links.routes;
    const auto before_addresses = m.links.addresses.at("wg0");
    // The fleet's key file goes too (a fleet removed from the file, its state cleaned up).
    m.keys.keys.erase("/state/f.key");

    model::HostState none;
    auto bk = m.backends();
    auto live = apply::read_live(bk, none, m.owned, m.now);
    REQUIRE(live);
    auto p = plan::diff(none, {}, live->state, m.owned, live->facts);
    REQUIRE(apply::keys_to_keep(p) == std::set<std::string>{"wg0"});
    auto t = apply::start_try(bk, m.keys, none, {}, *live, p, m.owned,
                              {.state_dir = "/state", .keys_dir = std::nullopt, .node = "n1", .now = m.now, .seconds = 5});
    REQUIRE(t);
    REQUIRE(m.converge(none).ok());
    state.owned = m.owned;
    REQUIRE(m.wg.devices.count("wg0") == 0);

    auto r = apply::roll_back(bk, m.keys, state, nullptr, *t, m.now);
    INFO(r.plan.ops.size());
    REQUIRE(r.ok());
    REQUIRE(m.wg.devices.count("wg0") == 1);
    CHECK(m.wg.devices.at("wg0").device == before);
    CHECK(m.links.routes == before_routes);
    CHECK(m.links.addresses.at("wg0") == before_addresses);
    CHECK(state.owned == t->owned_before);
}

TEST_CASE("try: a device whose key cannot be read or kept is not tried", "[try]") {
    FakeMachine m;
    auto a = host(m.keys, {peer(1, {"fd00:1::2/128"})});
    REQUIRE(m.converge(a).ok());
    m.keys.keys.insert_or_assign("/state/f.key", model::SecretKey::generate());
    auto b = host(m.keys, {peer(1, {"fd00:1::2/128"})});
    auto bk = m.backends();
    auto live = apply::read_live(bk, b, m.owned, m.now);
    REQUIRE(live);
    auto p = plan::diff(b, labels_of(b), live->state, m.owned, live->facts);
    const apply::TryStart how{.state_dir = "/state", .keys_dir = std::nullopt, .node = "n1", .now = m.now, .seconds = 5};
    SECTION("a kept key left with another key in it") {
        m.keys.keys.emplace(apply::kept_key_path("/state", "wg0"), model::SecretKey::generate());
        auto t = apply::start_try(bk, m.keys, b, labels_of(b), *live, p, m.owned, how);
        REQUIRE_FALSE(t);
        CHECK(t.error().message.find("holds another key") != std::string::npos);
    }
    SECTION("a device that does not give its private key") {
        m.wg.devices.at("wg0").private_key.reset();
        auto t = apply::start_try(bk, m.keys, b, labels_of(b), *live, p, m.owned, how);
        REQUIRE_FALSE(t);
        CHECK(t.error().message.find("not readable from the device") != std::string::npos);
    }
}

TEST_CASE("try: the rollback gives back the live state and the ownership record from before", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    backend::FakeJournal journal;
    auto a = with_file(host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"}, "192.0.2.2:51820")}));
    REQUIRE(m.converge(a).ok());
    state.owned = m.owned;
    auto b = m.backends();
    auto t = try_now(m, b, a, 5);
    const auto before_devices = m.wg.devices.at("wg0").device;
    const auto before_routes = m.links.routes;
    const auto before_rules = m.firewall.rules;
    const auto before_files = m.files.files;

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

namespace {

// The device as read now, as the waiting process's last poll leaves it, `age` ago.
apply::RecentDevices poll_of(backend::FakeWireGuard& wg, std::chrono::seconds age) {
    apply::RecentDevices r;
    auto d = wg.read_device("wg0");
    REQUIRE(d);
    r.devices.emplace("wg0", std::move(*d));
    r.at = std::chrono::steady_clock::now() - age;
    wg.reads.clear();
    return r;
}

}  // namespace

TEST_CASE("try: a rollback plans from the waiting process's last read while it is recent and still true", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    auto a = host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})});
    REQUIRE(m.converge(a).ok());
    state.owned = m.owned;
    auto b = m.backends();
    auto t = try_now(m, b, a, 5);
    const auto before = m.wg.devices.at("wg0").device;
    const auto as_before = poll_of(m.wg, std::chrono::seconds(0));  // a read from before the try's change
    auto tried = host(m.keys, {peer(1, {"fd00:1::7/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})});
    REQUIRE(m.converge(tried).ok());
    state.owned = m.owned;
    REQUIRE(m.wg.devices.at("wg0").device != before);

    SECTION("recent and true: the device is read once, to verify") {
        auto recent = poll_of(m.wg, std::chrono::seconds(0));
        auto r = apply::roll_back(b, m.keys, state, nullptr, t, m.now, false, &recent);
        REQUIRE(r.ok());
        CHECK(r.plan.ops.size() == 1);
        CHECK(m.wg.devices.at("wg0").device == before);
        CHECK(m.wg.reads == std::vector<std::string>{"wg0"});
        CHECK(recent.devices.empty());  // used once
    }
    SECTION("older than kRecentDevicesFor: read again, not used") {
        auto recent = poll_of(m.wg, apply::kRecentDevicesFor + std::chrono::seconds(1));
        auto r = apply::roll_back(b, m.keys, state, nullptr, t, m.now, false, &recent);
        REQUIRE(r.ok());
        CHECK(m.wg.devices.at("wg0").device == before);
        CHECK(m.wg.reads == std::vector<std::string>{"wg0", "wg0"});
    }
    SECTION("no longer true (the device changed after the read): planned and applied again from a fresh read") {
        auto recent = as_before;
        recent.at = std::chrono::steady_clock::now();
        m.wg.reads.clear();
        auto r = apply::roll_back(b, m.keys, state, nullptr, t, m.now, false, &recent);
        // Planned from the stale read, the first plan was empty and the verify found the change:
        // the second plan, from a fresh read, restores it.
        REQUIRE(r.ok());
        CHECK(r.plan.ops.size() == 1);
        CHECK(m.wg.devices.at("wg0").device == before);
        CHECK(m.wg.reads == std::vector<std::string>{"wg0", "wg0", "wg0"});
        CHECK(state.owned == t.owned_before);
    }
}

TEST_CASE("try: a device without a private key has none to keep", "[try]") {
    FakeMachine m;
    auto a = host(m.keys, {peer(1, {"fd00:1::2/128"})});
    REQUIRE(m.converge(a).ok());
    auto& dev = m.wg.devices.at("wg0");
    dev.private_key.reset();
    dev.device.public_key.reset();
    auto bk = m.backends();
    auto live = apply::read_live(bk, a, m.owned, m.now);
    REQUIRE(live);
    auto p = plan::diff(a, labels_of(a), live->state, m.owned, live->facts);
    REQUIRE(apply::keys_to_keep(p) == std::set<std::string>{"wg0"});
    auto t = apply::start_try(bk, m.keys, a, labels_of(a), *live, p, m.owned,
                              {.state_dir = "/state", .keys_dir = std::nullopt, .node = "n1", .now = m.now, .seconds = 5});
    REQUIRE(t);
    CHECK(m.keys.keys.count(apply::kept_key_path("/state", "wg0")) == 0);
    CHECK(t->labels.of("wg0").private_key_file == "/state/f.key");
}

TEST_CASE("try: a node in two fleets gets both back, each with its own key and published key", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    m.keys.keys.emplace("/state/g.key", model::SecretKey::generate());
    auto two = [&](uint16_t port) {
        auto hs = host(m.keys, {peer(1, {"fd00:1::2/128"})}, port);
        model::WgInterface w;
        w.name = "wg1";
        w.listen_port = 51830;
        w.up = true;
        w.public_key = m.keys.keys.at("/state/g.key").public_key();
        w.addresses = {pfx("fd00:2::1/40")};
        auto p = peer(2, {"fd00:2::2/128"});
        w.peers.emplace(p.public_key, p);
        hs.interfaces.emplace("wg1", std::move(w));
        return hs;
    };
    auto labels = [](const model::HostState& hs) {
        auto l = labels_of(hs);
        l.interfaces["wg1"].fleet = "g";
        l.interfaces["wg1"].private_key_file = "/state/g.key";
        return l;
    };
    auto a = two(51820);
    auto bk = m.backends();
    {
        auto live = apply::read_live(bk, a, m.owned, m.now);
        REQUIRE(live);
        REQUIRE(apply::apply_plan(bk, plan::diff(a, labels(a), live->state, m.owned, live->facts), m.keys, nullptr).ok());
        m.owned = plan::ownership_after(a, labels(a));
        state.owned = m.owned;
    }
    const auto before0 = m.wg.devices.at("wg0").device;
    const auto before1 = m.wg.devices.at("wg1").device;
    const model::SecretKey g_old = m.keys.keys.at("/state/g.key");

    // The try: fleet f's port moves, fleet g's key file is replaced.
    m.keys.keys.insert_or_assign("/state/g.key", model::SecretKey::generate());
    auto b = two(51821);
    auto live = apply::read_live(bk, b, m.owned, m.now);
    REQUIRE(live);
    auto p = plan::diff(b, labels(b), live->state, m.owned, live->facts);
    CHECK(apply::keys_to_keep(p) == std::set<std::string>{"wg1"});
    auto t = apply::start_try(bk, m.keys, b, labels(b), *live, p, m.owned,
                              {.state_dir = "/state", .keys_dir = "/keys", .node = "n1", .now = m.now, .seconds = 5});
    REQUIRE(t);
    CHECK(t->labels.of("wg0").private_key_file == "/state/f.key");
    CHECK(t->labels.of("wg1").private_key_file == apply::kept_key_path("/state", "wg1"));
    CHECK(t->published ==
          std::map<std::string, model::Key>{{"/keys/f/n1.pub", before0.public_key.value()}, {"/keys/g/n1.pub", g_old.public_key()}});
    REQUIRE(apply::apply_plan(bk, p, m.keys, nullptr).ok());
    state.owned = plan::ownership_after(b, labels(b));
    REQUIRE(m.wg.devices.at("wg0").device != before0);
    REQUIRE(m.wg.devices.at("wg1").device != before1);

    auto r = apply::roll_back(bk, m.keys, state, nullptr, *t, m.now);
    REQUIRE(r.ok());
    CHECK(m.wg.devices.at("wg0").device == before0);
    CHECK(m.wg.devices.at("wg1").device == before1);
    CHECK(m.keys.published.at("/keys/g/n1.pub") == g_old.public_key());
}

// One check of a try's verdict (apply::check_verdict), as watch --try runs it at each wake and
// apply --try in its loop.
TEST_CASE("try: one check of the verdict decides in the record, deadline, health, probe order", "[try]") {
    apply::TryRecord t;
    t.id = "7";
    t.started = 1000;
    t.deadline = 1010;
    t.baseline = {{.ifname = "wg0", .public_key = key_of(1), .name = "alice", .last_handshake = 990, .rx_bytes = 100},
                  {.ifname = "wg0", .public_key = key_of(2), .name = "bob", .last_handshake = 990, .rx_bytes = 10}};
    apply::PeerStats after{{"wg0", {{key_of(1), {990, 300, 0}}, {key_of(2), {990, 10, 0}}}}};
    apply::PeerStats now = after;
    int reads = 0, probes = 0;
    backend::Status probe_result = backend::Status::ok();
    auto stats = [&] {
        ++reads;
        return now;
    };
    auto probe = [&] {
        ++probes;
        return probe_result;
    };
    apply::VerdictWait w{.after = after};

    // Nobody back: pending, the waiting line said once.
    auto s = apply::check_verdict(t, w, {}, 1001, stats, probe);
    CHECK_FALSE(s.verdict);
    CHECK(s.say == "waiting: 0 of 2 peer(s) back");
    s = apply::check_verdict(t, w, {}, 1002, stats, probe);
    CHECK_FALSE(s.verdict);
    CHECK(s.say.empty());
    now["wg0"][key_of(1)].rx_bytes = 301;
    s = apply::check_verdict(t, w, {}, 1003, stats, probe);
    CHECK(s.say == "waiting: 1 of 2 peer(s) back");
    CHECK(reads == 3);
    // The deadline: rolled back, naming who is not back, without reading again.
    s = apply::check_verdict(t, w, {}, 1010, stats, probe);
    REQUIRE(s.verdict);
    CHECK_FALSE(s.verdict->confirmed);
    CHECK(s.verdict->how == "deadline passed; not back: bob on wg0");
    CHECK(reads == 3);
    // `wg-fleet confirm` (or another run settling it) wins over the deadline.
    s = apply::check_verdict(t, w, {.gone = false, .confirmed = "manual"}, 1010, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->confirmed);
    CHECK(s.verdict->how == "manual");
    s = apply::check_verdict(t, w, {.gone = true}, 1010, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->confirmed);
    CHECK(s.verdict->how == "settled by another run");

    // Everyone back: confirmed by health; with a probe, only once the probe passes, which runs
    // only when every peer is back.
    now["wg0"][key_of(2)].last_handshake = 1004;
    apply::VerdictWait w2{.after = after};
    s = apply::check_verdict(t, w2, {}, 1004, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->confirmed);
    CHECK(s.verdict->how == "health: 2 peer(s) back");
    CHECK(probes == 0);
    t.probe = "ping -c1 fd00::1";
    probe_result = backend::Error{1, "exit status 1"};
    apply::VerdictWait w3{.after = after};
    s = apply::check_verdict(t, w3, {}, 1004, stats, probe);
    CHECK_FALSE(s.verdict);
    CHECK(s.say == "waiting: the probe failed: exit status 1");
    CHECK(probes == 1);
    s = apply::check_verdict(t, w3, {}, 1011, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->how == "deadline passed; the probe failed: exit status 1");
    probe_result = backend::Status::ok();
    apply::VerdictWait w4{.after = after};
    s = apply::check_verdict(t, w4, {}, 1004, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->how == "health: 2 peer(s) back; probe");

    // Manual: neither the counters nor the probe count; only confirm, else the deadline.
    t.manual = true;
    const int reads_before = reads;
    apply::VerdictWait w5{.after = after};
    s = apply::check_verdict(t, w5, {}, 1004, stats, probe);
    CHECK_FALSE(s.verdict);
    CHECK(reads == reads_before);
    s = apply::check_verdict(t, w5, {}, 1010, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->how == "no `wg-fleet confirm` before the deadline");
    // No check before the deadline (a window shorter than the wait): not a probe failure.
    t.manual = false;
    apply::VerdictWait w6{.after = after};
    s = apply::check_verdict(t, w6, {}, 1010, stats, probe);
    REQUIRE(s.verdict);
    CHECK(s.verdict->how == "deadline passed before the first check");
}

TEST_CASE("try: the held state is repaired where it drifted, a roaming peer followed", "[try]") {
    FakeMachine m;
    backend::FakeStateStore state;
    // Peer 1 dials out (configured endpoint), peer 2 dials in: its endpoint is where it was seen.
    auto a = host(m.keys, {peer(1, {"fd00:1::2/128"}, "192.0.2.1:51820"), peer(2, {"fd00:1::3/128"})});
    REQUIRE(m.converge(a).ok());
    m.wg.devices.at("wg0").device.peers.at(key_of(2)).endpoint = ep("198.51.100.2:40000");
    state.owned = m.owned;
    auto b = m.backends();
    auto t = try_now(m, b, a, 5);
    const auto restored = m.wg.devices.at("wg0").device;

    const auto h = apply::held_target(t);
    CHECK(h.snapshot.interfaces.at("wg0").peers.at(key_of(1)).endpoint == ep("192.0.2.1:51820"));
    CHECK_FALSE(h.snapshot.interfaces.at("wg0").peers.at(key_of(2)).endpoint);
    CHECK(h.snapshot.interfaces.at("wg0").listen_port == 51820);

    // Nothing drifted: nothing to do.
    auto r = apply::roll_back(b, m.keys, state, nullptr, h, m.now);
    REQUIRE(r.ok());
    CHECK(r.plan.empty());
    // A peer removed by hand, and peer 2 roamed since: peer 1 comes back, peer 2 stays where it is.
    m.wg.devices.at("wg0").device.peers.erase(key_of(1));
    m.wg.devices.at("wg0").device.peers.at(key_of(2)).endpoint = ep("203.0.113.9:41000");
    r = apply::roll_back(b, m.keys, state, nullptr, h, m.now);
    REQUIRE(r.ok());
    CHECK(r.plan.ops.size() == 1);
    CHECK(m.wg.devices.at("wg0").device.peers.at(key_of(1)) == restored.peers.at(key_of(1)));
    CHECK(m.wg.devices.at("wg0").device.peers.at(key_of(2)).endpoint == ep("203.0.113.9:41000"));
    CHECK(state.owned == t.owned_before);
    // The snapshot itself would send peer 2 back to where it was seen at the try.
    auto raw = apply::roll_back(b, m.keys, state, nullptr, t, m.now, true);
    CHECK_FALSE(raw.plan.empty());
}
