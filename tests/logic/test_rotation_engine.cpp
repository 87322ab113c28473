// Key rotation in the engine, on fakes: a member's due next key becomes one key swap of its peer
// entry (the old key out, the new one in, next to each other in one set; allowed IPs and the
// live endpoint kept; nobody else touched); a switch not due yet changes nothing and says when
// it comes; the node's own due key is moved into place, set, published and its next key file
// removed 30 s after the switch time; a watch that made a switch keeps it once the file is gone.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "apply/engine.hpp"
#include "config/parse.hpp"
#include "fixture.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using namespace wgf::test;

namespace {

const char* kRotFleet = R"(
state_dir: /state
keys_dir: /keys
fleets:
  mesh:
    controllers:
      c1: { endpoint: "192.0.2.1", public_key: "YLw6pDqHyW2oC1l3bCjOTIX1wuRxERGPEtQm04/FTXo=" }
      c2: { endpoint: "192.0.2.2", public_key: "4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=" }
    peers:
      p1: { controller: c1, public_key: "qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=" }
)";

struct RotSetup {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    std::unique_ptr<plan::Fleetwide> fw;
    FakeMachine m;
    backend::FakeResolver dns;
    backend::FakeStateStore state;
    backend::FakeNextKeys next;
    backend::FakeJournal journal;
    apply::Backends b = m.backends();
    apply::Engine e{b, m.keys, dns, state, &journal, {}};

    explicit RotSetup(const std::string& node) {
        parsed = config::parse_text(kRotFleet, "fleet.yaml", sources, diags);
        REQUIRE_FALSE(diags.has_errors());
        fw = std::make_unique<plan::Fleetwide>(parsed.config);
        plan::validate(parsed.config, fw->plan, parsed.tree, diags);
        REQUIRE_FALSE(diags.has_errors());
        m.keys.keys.emplace("/state/mesh.key", model::SecretKey::generate());
        e.next_keys = &next;
        REQUIRE(e.run(*fw, node, apply::Mode::apply, m.now).ok());
    }
};

model::Key p1_old() { return *model::Key::from_base64("qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc="); }

}  // namespace

TEST_CASE("rotation engine: a member's next key is one key swap at its switch time, keeping allowed IPs and the live endpoint",
          "[rotation][engine]") {
    RotSetup s("c1");
    auto& dev = s.m.wg.devices.at("mesh").device;
    // p1 dials in: c1 knows where from its packets (no endpoint in the file).
    dev.peers.at(p1_old()).endpoint = ep("203.0.113.7:40000");
    const auto old_ips = dev.peers.at(p1_old()).allowed_ips;
    const auto c2_before = dev.peers.at(*model::Key::from_base64("4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA="));
    const model::Key fresh = model::SecretKey::generate().public_key();
    s.next.by_fleet["mesh"] = {{.node = "p1", .path = "/keys/mesh/p1.next.pub", .key = fresh, .switch_at = s.m.now + 30, .refused = {}}};

    // Before its time: nothing changes, and the run says when to come back.
    auto early = s.e.run(*s.fw, "c1", apply::Mode::plan, s.m.now + 29);
    REQUIRE_FALSE(early.error);
    CHECK(early.plan.empty());
    CHECK(early.rotation.next_switch == s.m.now + 30);

    auto due = s.e.run(*s.fw, "c1", apply::Mode::plan, s.m.now + 30);
    REQUIRE_FALSE(due.error);
    CHECK_FALSE(due.rotation.next_switch);
    REQUIRE(due.plan.ops.size() == 2);
    const auto* rm = std::get_if<plan::OpRemovePeer>(&due.plan.ops[0]);
    const auto* add = std::get_if<plan::OpAddPeer>(&due.plan.ops[1]);
    REQUIRE(rm);
    REQUIRE(add);
    CHECK(rm->public_key == p1_old());
    CHECK(rm->swapped_for == fresh);
    CHECK(add->peer.public_key == fresh);
    CHECK(add->swapped_from == p1_old());
    CHECK(add->peer.allowed_ips == old_ips);
    CHECK(add->peer.endpoint == ep("203.0.113.7:40000"));
    CHECK(plan::describe(due.plan.ops[0]) ==
          fmt::format("- peer p1 ({}) on mesh: key swap (old key, replaced by {})  [disrupts one peer's session]", p1_old().short_str(),
                      fresh.short_str()));
    CHECK(plan::describe(due.plan.ops[1])
              .starts_with(fmt::format("+ peer p1 ({}) on mesh: key swap (new key, replaces {}); allowed-ips ", fresh.short_str(),
                                       p1_old().short_str())));
    CHECK(plan::summarize(due.plan) == "Plan: 1 to add, 0 to change, 1 to remove; disrupts 1 peer session.");

    const size_t sets_before = s.m.wg.sets.size();
    auto applied = s.e.run(*s.fw, "c1", apply::Mode::apply, s.m.now + 30);
    INFO((applied.error ? applied.error->message : ""));
    REQUIRE(applied.ok());
    // One set of the device did both, and named no other peer.
    REQUIRE(s.m.wg.sets.size() == sets_before + 1);
    const auto& set = s.m.wg.sets.back();
    REQUIRE(set.peers.size() == 2);
    CHECK(set.peers[0].public_key == p1_old());
    CHECK(set.peers[0].remove);
    CHECK(set.peers[1].public_key == fresh);
    CHECK_FALSE(dev.peers.count(p1_old()));
    REQUIRE(dev.peers.count(fresh));
    CHECK(dev.peers.at(fresh).endpoint == ep("203.0.113.7:40000"));
    CHECK(dev.peers.at(fresh).allowed_ips == old_ips);
    CHECK(dev.peers.at(c2_before.public_key) == c2_before);
    CHECK(std::count_if(s.journal.lines.begin(), s.journal.lines.end(),
                        [](const std::string& l) { return l.find("key swap") != std::string::npos; }) == 2);
}

TEST_CASE("rotation engine: a watch keeps a switch it made once the next key file is gone", "[rotation][engine]") {
    RotSetup s("c1");
    apply::RotationMemory memory;
    s.e.rotations = &memory;
    const model::Key fresh = model::SecretKey::generate().public_key();
    s.next.by_fleet["mesh"] = {{.node = "p1", .path = "/keys/mesh/p1.next.pub", .key = fresh, .switch_at = s.m.now, .refused = {}}};
    REQUIRE(s.e.run(*s.fw, "c1", apply::Mode::apply, s.m.now).ok());
    REQUIRE(s.m.wg.devices.at("mesh").device.peers.count(fresh));
    // The rotating node completed its switch: its next key file is gone; the configuration this
    // watch loaded still has the old key.
    s.next.by_fleet.clear();
    auto again = s.e.run(*s.fw, "c1", apply::Mode::apply, s.m.now + 1);
    REQUIRE(again.ok());
    CHECK(again.plan.empty());
    CHECK(s.m.wg.devices.at("mesh").device.peers.count(fresh));
    // Without the memory (a one-shot apply) the loaded key would win: the memory is what keeps it.
    s.e.rotations = nullptr;
    auto oneshot = s.e.run(*s.fw, "c1", apply::Mode::plan, s.m.now + 2);
    CHECK_FALSE(oneshot.plan.empty());
}

TEST_CASE("rotation engine: the node's own key switches at its time: moved into place, set, published, next file removed",
          "[rotation][engine]") {
    RotSetup s("p1");
    // p1's own key: the fleet file's public key is not p1's real key here, only what others use.
    const model::SecretKey next_key = model::SecretKey::generate();
    s.m.keys.keys.emplace("/state/mesh.key.next", next_key);
    s.m.keys.published["/keys/mesh/p1.next.pub"] = next_key.public_key();
    s.next.by_fleet["mesh"] = {
        {.node = "p1", .path = "/keys/mesh/p1.next.pub", .key = next_key.public_key(), .switch_at = s.m.now + 5, .refused = {}}};
    auto early = s.e.run(*s.fw, "p1", apply::Mode::apply, s.m.now + 4);
    REQUIRE(early.ok());
    CHECK(early.plan.empty());
    CHECK(early.rotation.next_switch == s.m.now + 5);
    CHECK(s.m.keys.keys.count("/state/mesh.key.next"));

    auto planned = s.e.run(*s.fw, "p1", apply::Mode::plan, s.m.now + 5);
    REQUIRE(planned.plan.ops.size() == 1);
    CHECK(plan::describe(planned.plan.ops[0]) ==
          fmt::format("~ device mesh: private key from /state/mesh.key.next (public key {})  [disrupts every session on the device]",
                      next_key.public_key().short_str()));
    CHECK(s.m.keys.keys.count("/state/mesh.key.next"));  // plan moves nothing

    auto r = s.e.run(*s.fw, "p1", apply::Mode::apply, s.m.now + 5);
    REQUIRE(r.ok());
    CHECK(r.rotation.own_switched == std::vector<std::string>{"mesh"});
    CHECK_FALSE(s.m.keys.keys.count("/state/mesh.key.next"));
    CHECK(s.m.keys.keys.at("/state/mesh.key") == next_key);
    CHECK(s.m.wg.devices.at("mesh").device.public_key == next_key.public_key());
    CHECK(s.m.keys.published.at("/keys/mesh/p1.pub") == next_key.public_key());
    // The next key's file stays a while, for nodes whose run at the switch time comes later; a
    // run after that removes it.
    CHECK(s.m.keys.published.count("/keys/mesh/p1.next.pub"));
    REQUIRE(s.e.run(*s.fw, "p1", apply::Mode::apply, s.m.now + 5 + 29).ok());
    CHECK(s.m.keys.published.count("/keys/mesh/p1.next.pub"));
    REQUIRE(s.e.run(*s.fw, "p1", apply::Mode::apply, s.m.now + 5 + 30).ok());
    CHECK_FALSE(s.m.keys.published.count("/keys/mesh/p1.next.pub"));
    REQUIRE_FALSE(s.journal.lines.empty());
    CHECK(std::any_of(s.journal.lines.begin(), s.journal.lines.end(), [](const std::string& l) {
        return l.find("key switched: /state/mesh.key.next moved to /state/mesh.key") != std::string::npos;
    }));
    // The stale file (the rotating node's own, gone above) or another's equal to the key: nothing.
    s.next.by_fleet.clear();
    CHECK(s.e.run(*s.fw, "p1", apply::Mode::plan, s.m.now + 6).plan.empty());
}

TEST_CASE("rotation engine: a refused next key file is a warning naming it, and changes nothing", "[rotation][engine]") {
    RotSetup s("c1");
    s.next.by_fleet["mesh"] = {{.node = "p1",
                                .path = "/keys/mesh/p1.next.pub",
                                .key = std::nullopt,
                                .switch_at = 0,
                                .refused = "line 2, column 12: 'x' is not an RFC 3339 time such as 2026-12-01T02:30:00Z"}};
    auto r = s.e.run(*s.fw, "c1", apply::Mode::plan, s.m.now + 100);
    REQUIRE_FALSE(r.error);
    CHECK(r.plan.empty());
    CHECK(r.warnings == std::vector<std::string>{"/keys/mesh/p1.next.pub: refused as the next key of p1 in fleet mesh: line 2, column 12: "
                                                 "'x' is not an RFC 3339 time such as 2026-12-01T02:30:00Z"});
}
