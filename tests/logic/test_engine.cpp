// The engine on fakes: keys are generated only by apply, DNS names resolve in their own phase
// (an unresolvable one leaves that peer without an endpoint and warns), ownership is recorded,
// and the post-apply verification finds nothing left.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "apply/engine.hpp"
#include "config/parse.hpp"
#include "fixture.hpp"
#include "inputs/desired_cache.hpp"
#include "plan/ownership_json.hpp"
#include "plan/sysctls.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using namespace wgf::test;

namespace {

using MapResolver = backend::FakeResolver;
using MemState = backend::FakeStateStore;

const char* kFleet = R"(
state_dir: /state
fleets:
  mesh:
    controllers:
      c1: { endpoint: "vpn1.example.com", public_key: "YLw6pDqHyW2oC1l3bCjOTIX1wuRxERGPEtQm04/FTXo=" }
      c2: { endpoint: "vpn2.example.com:51821", public_key: "4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=" }
    peers:
      p1: { controller: c1, public_key: "qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=" }
      p2: { controller: c2 }
)";

struct Setup {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    std::unique_ptr<plan::Fleetwide> fw;
    explicit Setup(const char* text = kFleet) {
        parsed = config::parse_text(text, "fleet.yaml", sources, diags);
        REQUIRE_FALSE(diags.has_errors());
        fw = std::make_unique<plan::Fleetwide>(parsed.config);
        plan::validate(parsed.config, fw->plan, parsed.tree, diags);
        REQUIRE_FALSE(diags.has_errors());
    }
};

// The fleet applied on c1 once: the fakes hold its converged state.
struct Converged {
    Setup s;
    FakeMachine m;
    MapResolver dns;
    MemState state;
    apply::Backends b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    Converged() { REQUIRE(e.run(*s.fw, "c1", apply::Mode::apply, m.now).ok()); }
};

}  // namespace

TEST_CASE("engine: plan reads keys only, apply generates one, converges and verifies", "[engine]") {
    Setup s;
    FakeMachine m;
    m.keys.keys.clear();
    MapResolver dns;
    dns.names["vpn2.example.com"] = *model::IpAddr::parse("198.51.100.2");
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};

    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE_FALSE(planned.error);
    CHECK(m.keys.keys.empty());  // plan never writes a key
    CHECK(planned.warnings.empty());
    CHECK(planned.plan.pending == std::vector<std::string>{"p2 in fleet mesh"});
    CHECK(state.saves == 0);

    auto applied = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(applied.ok());
    CHECK(applied.generated_keys == std::vector<std::string>{"mesh"});
    REQUIRE(m.keys.keys.count("/state/mesh.key"));
    const auto& dev = m.wg.devices.at("mesh").device;
    CHECK(dev.public_key == m.keys.keys.at("/state/mesh.key").public_key());
    // c2's name resolved in the resolution phase; the peer carries the address.
    auto c2 = *model::Key::from_base64("4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=");
    REQUIRE(dev.peers.count(c2));
    CHECK(dev.peers.at(c2).endpoint == ep("198.51.100.2:51821"));
    REQUIRE(applied.leftover);
    CHECK(applied.leftover->empty());
    CHECK(state.owned.interfaces == std::set<std::string>{"mesh"});
    CHECK(state.owned.peers.at("mesh").size() == 2);  // c2 and p1; p2 is pending

    auto again = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(again.ok());
    CHECK(again.plan.empty());
    CHECK(again.generated_keys.empty());
}

namespace {

std::vector<std::string> lines_of(const plan::Plan& p) {
    std::vector<std::string> out;
    for (const auto& op : p.ops) out.push_back(plan::describe(op));
    return out;
}

}  // namespace

TEST_CASE("engine: a key that will be generated is a planned change (fresh device: no disruption)", "[engine][keys]") {
    Setup s;
    FakeMachine m;
    m.keys.keys.clear();
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE_FALSE(planned.error);
    auto lines = lines_of(planned.plan);
    REQUIRE(lines.size() >= 2);
    CHECK(lines[0] == "+ device mesh (fleet mesh)");
    CHECK(lines[1] == "~ device mesh: new private key, generated into /state/mesh.key");
    CHECK(m.keys.keys.empty());

    auto applied = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(applied.ok());
    CHECK(applied.applied->done == lines);  // apply does what plan showed, line for line
}

TEST_CASE("engine: a key that will be generated is a planned change (existing device: every session)", "[engine][keys]") {
    Converged c;
    auto& [s, m, dns, state, b, e] = c;
    const auto old_key = m.wg.devices.at("mesh").device.public_key;
    m.keys.keys.clear();  // the state directory was lost; the device still runs with the old key

    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE_FALSE(planned.error);
    REQUIRE(planned.plan.ops.size() == 1);
    CHECK(plan::describe(planned.plan.ops[0]) ==
          "~ device mesh: new private key, generated into /state/mesh.key  [disrupts every session on the device]");
    CHECK(plan::disruption(planned.plan.ops[0]) == plan::Disruption::all_sessions);
    CHECK_FALSE(planned.plan.empty());  // plan --detailed-exitcode exits 2
    CHECK(plan::summarize(planned.plan) == "Plan: 0 to add, 1 to change, 0 to remove; resets every session on 1 device.");
    for (const auto& l : lines_of(planned.plan)) CHECK(l.find("(public key") == std::string::npos);

    auto applied = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(applied.ok());
    CHECK(applied.applied->done == lines_of(planned.plan));
    CHECK(applied.generated_keys == std::vector<std::string>{"mesh"});
    REQUIRE(m.keys.keys.count("/state/mesh.key"));
    CHECK(m.wg.devices.at("mesh").device.public_key == m.keys.keys.at("/state/mesh.key").public_key());
    CHECK(m.wg.devices.at("mesh").device.public_key != old_key);
    REQUIRE(applied.leftover);
    CHECK(applied.leftover->empty());
}

TEST_CASE("engine: an endpoint that does not resolve leaves that peer without one, the rest converges", "[engine][dns]") {
    Setup s;
    FakeMachine m;
    MapResolver dns;  // knows no names at all
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    auto r = e.run(*s.fw, "p1", apply::Mode::apply, m.now);
    REQUIRE(r.ok());
    REQUIRE(r.warnings.size() == 2);
    CHECK(r.warnings[0].find("endpoint vpn") != std::string::npos);
    CHECK(r.warnings[0].find("does not resolve") != std::string::npos);
    const auto& dev = m.wg.devices.at("mesh").device;
    CHECK(dev.peers.size() == 2);
    for (const auto& [k, p] : dev.peers) CHECK_FALSE(p.endpoint);
    CHECK(dns.asked.size() == 2);

    // The name resolves on a later run (a tick): only that peer's endpoint changes.
    dns.names["vpn1.example.com"] = *model::IpAddr::parse("198.51.100.1");
    auto later = e.run(*s.fw, "p1", apply::Mode::apply, m.now);
    REQUIRE(later.ok());
    REQUIRE(later.plan.ops.size() == 1);
    CHECK(plan::describe(later.plan.ops[0]).find("endpoint (none) -> 198.51.100.1:51820") != std::string::npos);
}

TEST_CASE("state: ownership survives a JSON round trip", "[engine][state]") {
    plan::Ownership o;
    o.interfaces = {"mesh", "wg_lab"};
    o.peers["mesh"] = {key_of(1), key_of(2)};
    o.endpoints["mesh"][key_of(1)] = ep("[fd00::1]:51820");
    o.files = {"/run/wg_fleet_hosts"};
    o.names["mesh"][key_of(1)] = "alice";
    o.names["mesh"][key_of(2)] = "bob";
    o.reloads = {"/etc/caddy/wg-fleet"};
    o.reload_commands["/etc/caddy/wg-fleet"] = "caddy reload --config \"/etc/caddy/Caddyfile\"";
    o.reload_commands["/srv/routes"] = "systemctl reload caddy";
    auto back = plan::ownership_from_json(plan::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
    CHECK_FALSE(plan::ownership_from_json("{not json"));
    // A record written before names were kept reads as one without names.
    const std::string old_record = R"({"version": 1, "interfaces": ["mesh"], "peers": {"mesh": [")" + key_of(1).base64() +
                                   R"("]}, "endpoints": {"mesh": {}}, "files": []})";
    auto old = plan::ownership_from_json(old_record);
    REQUIRE(old);
    CHECK(old->peers.at("mesh").count(key_of(1)) == 1);
    CHECK(old->names.empty());
}

TEST_CASE("state: an interface with no peers or no endpoints round-trips too", "[engine][state]") {
    // What ownership_after gives a hub whose peers dial in: every interface has an entry in
    // peers and endpoints, possibly empty. Losing the empty entries made every run rewrite
    // state.json.
    plan::Ownership o;
    o.interfaces = {"hub", "empty"};
    o.peers["hub"] = {key_of(1)};
    o.peers["empty"] = {};
    o.endpoints["hub"] = {};
    o.endpoints["empty"] = {};
    auto back = plan::ownership_from_json(plan::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
}

TEST_CASE("state: a record reads the same in any layout, other keys skipped, a key given twice counting last", "[engine][state]") {
    const std::string k1 = key_of(1).base64(), k2 = key_of(2).base64(), k3 = key_of(3).base64();
    plan::Ownership want;
    want.interfaces = {"mesh"};
    want.peers["mesh"] = {key_of(1), key_of(2)};
    want.endpoints["mesh"][key_of(2)] = ep("198.51.100.2:51820");
    want.files = {"/run/hosts"};
    want.sysctls["net/ipv6/conf/all/forwarding"] = {"0", "1"};
    const std::string texts[] = {
        plan::ownership_to_json(want),
        // Compact, another order, no version.
        fmt::format(R"({{"sysctls":{{"net/ipv6/conf/all/forwarding":{{"value":"1","original":"0"}}}},"files":["/run/hosts"],)"
                    R"("endpoints":{{"mesh":{{"{}":"198.51.100.2:51820"}}}},"peers":{{"mesh":["{}","{}"]}},"interfaces":["mesh"]}})",
                    k2, k1, k2),
        // Keys of other writers, of any shape, at the top and in a sysctl's record; a peer key
        // that is not one is dropped.
        fmt::format(R"({{"version":2,"comment":{{"a":[1,{{"peers":null}}],"b":true}},"interfaces":["mesh"],)"
                    R"("peers":{{"mesh":["{}","not a key","{}"]}},"endpoints":{{"mesh":{{"{}":"198.51.100.2:51820"}}}},)"
                    R"("files":["/run/hosts"],"sysctls":{{"net/ipv6/conf/all/forwarding":{{"original":"0","note":[{{}}],"value":"1"}}}},)"
                    R"("tail":[[[]]]}})",
                    k1, k2, k2),
        // A section, an interface and a field given twice: the last one counts.
        fmt::format(R"({{"interfaces":["old"],"interfaces":["mesh"],"peers":{{"mesh":["{}"],"mesh":["{}","{}"]}},)"
                    R"("endpoints":{{"mesh":{{"{}":"192.0.2.1:1"}},"mesh":{{"{}":"198.51.100.2:51820"}}}},"files":["/run/hosts"],)"
                    R"("sysctls":{{"net/ipv6/conf/all/forwarding":{{"original":"0","value":"0","value":"1"}}}}}})",
                    k3, k1, k2, k3, k2),
    };
    for (const auto& text : texts) {
        INFO(text);
        std::string why;
        auto o = plan::ownership_from_json(text, &why);
        INFO(why);
        REQUIRE(o);
        CHECK(*o == want);
    }
}

TEST_CASE("state: a record of another shape is not readable, and says why", "[engine][state]") {
    const std::string k1 = key_of(1).base64();
    const std::pair<std::string, std::string> bad[] = {
        {"", "parse error"},
        {"[]", "an array where the record's object belongs"},
        {"1", "a number where the record's object belongs"},
        {R"({"interfaces":[],"peers":{},"endpoints":{}})", R"(no "files")"},
        {R"({"interfaces":[],"peers":{},"files":[]})", R"(no "endpoints")"},
        {R"({"interfaces":{},"peers":{},"endpoints":{},"files":[]})", R"(an object in "interfaces")"},
        {R"({"interfaces":[1],"peers":{},"endpoints":{},"files":[]})", R"(a number in "interfaces")"},
        {R"({"interfaces":[],"peers":[],"endpoints":{},"files":[]})", R"(an array in "peers")"},
        {R"({"interfaces":[],"peers":{"mesh":"x"},"endpoints":{},"files":[]})", R"(a string in "peers")"},
        {R"({"interfaces":[],"peers":{"mesh":[null]},"endpoints":{},"files":[]})", R"(null in "peers")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{"mesh":[]},"files":[]})", R"(an array in "endpoints")"},
        {fmt::format(R"({{"interfaces":[],"peers":{{}},"endpoints":{{"mesh":{{"{}":{{}}}}}},"files":[]}})", k1),
         R"(an object in "endpoints")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[true]})", R"(a boolean in "files")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[],"sysctls":[]})", R"(an array in "sysctls")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[],"sysctls":{"a":{"original":"0"}}})", R"(sysctls: a lacks)"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[],"sysctls":{"a":{"original":1,"value":"1"}}})",
         R"(a number in "sysctls")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[]} {})", "parse error"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[],"reload_commands":["caddy reload"]})",
         R"(an array in "reload_commands")"},
        {R"({"interfaces":[],"peers":{},"endpoints":{},"files":[],"reload_commands":{"/d":{"x":"y"}}})",
         R"(an object in "reload_commands")"},
    };
    for (const auto& [text, reason] : bad) {
        INFO(text);
        std::string why;
        CHECK_FALSE(plan::ownership_from_json(text, &why));
        CHECK_THAT(why, Catch::Matchers::Contains(reason));
    }
}

TEST_CASE("engine: a prefetch of the node's interfaces is the read the plan uses", "[engine][prefetch]") {
    Converged c;
    auto& [s, m, dns, state, b, e] = c;

    CHECK(apply::interfaces_of(s.parsed.config, "c1") == std::set<std::string>{"mesh"});
    CHECK(apply::interfaces_of(s.parsed.config, "p2") == std::set<std::string>{"mesh"});
    CHECK(apply::interfaces_of(s.parsed.config, "nobody").empty());

    // Drift: a peer removed behind our back. The prefetched read sees it; nothing reads again
    // before the plan, and the verification reads once after the apply.
    auto p1 = *model::Key::from_base64("qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=");
    m.wg.devices.at("mesh").device.peers.erase(p1);
    m.wg.reads.clear();
    {
        apply::Prefetch pre(b, apply::interfaces_of(s.parsed.config, "c1"), m.now);
        auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now, &pre);
        REQUIRE(r.ok());
        REQUIRE(r.plan.ops.size() == 1);
        CHECK(plan::describe(r.plan.ops[0]).rfind("+ peer", 0) == 0);
        CHECK(m.wg.reads == std::vector<std::string>{"mesh", "mesh"});  // prefetch, verification
        CHECK(r.leftover);
        CHECK(r.leftover->empty());
    }

    // A guess that is not what the node renders to is not used: the plan reads for itself.
    m.wg.devices.at("mesh").device.peers.erase(p1);
    m.wg.reads.clear();
    {
        apply::Prefetch wrong(b, {"other"}, m.now);
        auto r = e.run(*s.fw, "c1", apply::Mode::plan, m.now, &wrong);
        REQUIRE(r.ok());
        REQUIRE(r.plan.ops.size() == 1);
        CHECK(plan::describe(r.plan.ops[0]).rfind("+ peer", 0) == 0);
        CHECK(m.wg.reads == std::vector<std::string>{"mesh"});  // "other" has no link: not read
    }
}

TEST_CASE("engine: interfaces owned but no longer desired are read besides the prefetch", "[engine][prefetch]") {
    Converged c;
    auto& [s, m, dns, state, b, e] = c;
    // A fleet removed from the file left its device behind, recorded as ours.
    REQUIRE(m.wg.create_device("old0"));
    state.owned.interfaces.insert("old0");
    m.wg.reads.clear();
    apply::Prefetch pre(b, apply::interfaces_of(s.parsed.config, "c1"), m.now);
    auto r = e.run(*s.fw, "c1", apply::Mode::plan, m.now, &pre);
    REQUIRE(r.ok());
    CHECK(m.wg.reads == std::vector<std::string>{"mesh", "old0"});
    REQUIRE(r.plan.ops.size() == 1);
    CHECK(plan::describe(r.plan.ops[0]).find("old0") != std::string::npos);
    CHECK(plan::mark(r.plan.ops[0]) == '-');
}

TEST_CASE("engine: a prefetch that failed is reported as the run's error", "[engine][prefetch]") {
    Converged c;
    auto& [s, m, dns, state, b, e] = c;
    // The device's link is there but the device is not WireGuard: the read fails.
    m.wg.devices.erase("mesh");
    m.wg.reads.clear();
    apply::Prefetch pre(b, {"mesh"}, m.now);
    auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now, &pre);
    REQUIRE(r.error);
    CHECK(r.error->message == "interface mesh exists but is not a WireGuard device; wg-fleet will not take it over");
    CHECK_FALSE(r.applied);
    CHECK(m.wg.reads == std::vector<std::string>{"mesh"});
}

namespace {

// kFleet with c1 demoted to a peer: it no longer forwards.
const char* kFleetC1Peer = R"(
state_dir: /state
fleets:
  mesh:
    controllers:
      c2: { endpoint: "198.51.100.2:51821", public_key: "4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=" }
    peers:
      c1: { controller: c2 }
)";

std::vector<std::string> sysctl_lines(const plan::Plan& p) {
    std::vector<std::string> out;
    for (const auto& op : p.ops)
        if (std::holds_alternative<plan::OpSetSysctl>(op)) out.push_back(plan::describe(op));
    return out;
}

// A host with an uplink that learns its default route from router advertisements (eth0), one
// that ignores them (eth1), one already in hybrid mode (eth2).
void host_interfaces(backend::FakeSysctls& s) {
    for (const char* n : {"all", "default", "lo", "eth0"}) s.values[plan::accept_ra_key(n)] = "1";
    s.values[plan::accept_ra_key("eth1")] = "0";
    s.values[plan::accept_ra_key("eth2")] = "2";
}

}  // namespace

TEST_CASE(
    "engine: turning IPv6 forwarding on raises accept_ra 1 -> 2 first, wg-fleet restores what it changed once forwarding is no longer needed",
    "[engine][sysctl]") {
    Setup on, off(kFleetC1Peer);
    FakeMachine m;
    host_interfaces(m.sysctls);
    MapResolver dns;
    dns.names["vpn1.example.com"] = *model::IpAddr::parse("198.51.100.1");
    dns.names["vpn2.example.com"] = *model::IpAddr::parse("198.51.100.2");
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};

    auto planned = e.run(*on.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE(planned.ok());
    // Every interface with accept_ra=1 and `default` (new interfaces copy it), before forwarding:
    // turning forwarding on purges the RA routes of interfaces whose accept_ra is not 2. Not
    // `all` (the kernel never reads it), not wg-fleet's own device.
    CHECK(sysctl_lines(planned.plan) == std::vector<std::string>{
                                            "~ sysctl net/ipv6/conf/default/accept_ra 1 -> 2",
                                            "~ sysctl net/ipv6/conf/eth0/accept_ra 1 -> 2",
                                            "~ sysctl net/ipv6/conf/lo/accept_ra 1 -> 2",
                                            "~ sysctl net/ipv6/conf/all/forwarding 0 -> 1",
                                        });
    auto applied = e.run(*on.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(applied.ok());
    CHECK(applied.leftover->empty());
    CHECK(m.sysctls.writes == std::vector<std::string>{"net/ipv6/conf/default/accept_ra=2", "net/ipv6/conf/eth0/accept_ra=2",
                                                       "net/ipv6/conf/lo/accept_ra=2", "net/ipv6/conf/all/forwarding=1"});
    CHECK(m.sysctls.values.at(plan::accept_ra_key("all")) == "1");
    CHECK(m.sysctls.values.at(plan::accept_ra_key("eth1")) == "0");
    CHECK(m.sysctls.values.at(plan::accept_ra_key("eth2")) == "2");
    using plan::OwnedSysctl;
    const std::map<std::string, OwnedSysctl> owned{
        {"net/ipv6/conf/all/forwarding", {"0", "1"}},
        {"net/ipv6/conf/default/accept_ra", {"1", "2"}},
        {"net/ipv6/conf/eth0/accept_ra", {"1", "2"}},
        {"net/ipv6/conf/lo/accept_ra", {"1", "2"}},
    };
    CHECK(state.owned.sysctls == owned);
    CHECK(e.run(*on.fw, "c1", apply::Mode::apply, m.now).plan.empty());

    // An interface that appears with accept_ra=1 (made before default was raised) is raised too;
    // the device wg-fleet itself created is not.
    m.sysctls.values[plan::accept_ra_key("eth3")] = "1";
    m.sysctls.values[plan::accept_ra_key("mesh")] = "1";
    auto later = e.run(*on.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(later.ok());
    CHECK(sysctl_lines(later.plan) == std::vector<std::string>{"~ sysctl net/ipv6/conf/eth3/accept_ra 1 -> 2"});

    // Someone lowers eth0 to 0 (no RAs at all): theirs now, neither raised nor restored.
    m.sysctls.values[plan::accept_ra_key("eth0")] = "0";
    auto theirs = e.run(*on.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(theirs.ok());
    CHECK(sysctl_lines(theirs.plan).empty());
    CHECK(state.owned.sysctls.count("net/ipv6/conf/eth0/accept_ra") == 0);

    // c1 no longer forwards: forwarding goes back first, then accept_ra, each to what it was.
    m.sysctls.writes.clear();
    auto demoted = e.run(*off.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(demoted.ok());
    CHECK(demoted.leftover->empty());
    CHECK(sysctl_lines(demoted.plan) == std::vector<std::string>{
                                            "~ sysctl net/ipv6/conf/all/forwarding 1 -> 0 (restored: wg-fleet no longer needs it)",
                                            "~ sysctl net/ipv6/conf/default/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)",
                                            "~ sysctl net/ipv6/conf/eth3/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)",
                                            "~ sysctl net/ipv6/conf/lo/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)",
                                        });
    CHECK(m.sysctls.values.at(plan::accept_ra_key("eth0")) == "0");
    CHECK(m.sysctls.values.at(plan::accept_ra_key("mesh")) == "1");
    CHECK(state.owned.sysctls.empty());
    CHECK(e.run(*off.fw, "c1", apply::Mode::apply, m.now).plan.empty());
}

TEST_CASE("engine: IPv6 forwarding someone else turned on is theirs: accept_ra is not raised and nothing is restored", "[engine][sysctl]") {
    Setup on, off(kFleetC1Peer);
    FakeMachine m;
    host_interfaces(m.sysctls);
    m.sysctls.values[plan::kIpv6Forwarding] = "1";
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    auto r = e.run(*on.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(r.ok());
    CHECK(sysctl_lines(r.plan).empty());
    CHECK(state.owned.sysctls.empty());
    auto demoted = e.run(*off.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(demoted.ok());
    CHECK(sysctl_lines(demoted.plan).empty());
    CHECK(m.sysctls.values.at(plan::kIpv6Forwarding) == "1");
}

TEST_CASE("sysctls: an accept_ra wg-fleet raised stays raised while forwarding it no longer owns stays on", "[engine][sysctl]") {
    // The forwarding record is gone (someone set forwarding since, or the record was lost), the
    // accept_ra record is not: lowering accept_ra with forwarding on would drop the host's RAs.
    model::HostState desired, live;
    live.sysctls[plan::kIpv6Forwarding] = "1";
    live.sysctls[plan::accept_ra_key("eth0")] = "2";
    live.sysctls[plan::accept_ra_key("eth1")] = "1";
    plan::Ownership owned;
    owned.sysctls[plan::accept_ra_key("eth0")] = {"1", "2"};
    plan::complete_sysctls(desired, live, owned);
    CHECK(desired.sysctls == std::map<std::string, std::string>{{plan::accept_ra_key("eth0"), "2"}});
    CHECK(plan::diff(desired, {}, live, owned).empty());
    // Once forwarding is off, it goes back.
    live.sysctls[plan::kIpv6Forwarding] = "0";
    model::HostState none;
    plan::complete_sysctls(none, live, owned);
    auto p = plan::diff(none, {}, live, owned);
    REQUIRE(p.ops.size() == 1);
    CHECK(plan::describe(p.ops[0]) == "~ sysctl net/ipv6/conf/eth0/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)");
}

TEST_CASE("state: owned sysctls and their originals survive a JSON round trip, a record without them loads", "[engine][state]") {
    plan::Ownership o;
    o.interfaces = {"mesh"};
    o.peers["mesh"] = {};
    o.endpoints["mesh"] = {};
    o.sysctls["net/ipv6/conf/all/forwarding"] = {"0", "1"};
    o.sysctls["net/ipv6/conf/eth0/accept_ra"] = {"1", "2"};
    auto back = plan::ownership_from_json(plan::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
    auto old = plan::ownership_from_json(R"({"version":1,"interfaces":["mesh"],"peers":{"mesh":[]},"endpoints":{"mesh":{}},"files":[]})");
    REQUIRE(old);
    CHECK(old->sysctls.empty());
    // A record of a sysctl wg-fleet never sets, or of a value it never writes, is not restored.
    auto odd = plan::ownership_from_json(R"({"version":1,"interfaces":[],"peers":{},"endpoints":{},"files":[],"sysctls":{
        "kernel/core_pattern":{"original":"|/tmp/x","value":"core"},
        "net/ipv6/conf/eth0/accept_ra":{"original":"1 2","value":"2"},
        "net/ipv6/conf/../../kernel/accept_ra":{"original":"1","value":"2"},
        "net/ipv6/conf/eth1/accept_ra":{"original":"1","value":"2"}}})");
    REQUIRE(odd);
    CHECK(odd->sysctls == std::map<std::string, plan::OwnedSysctl>{{"net/ipv6/conf/eth1/accept_ra", {"1", "2"}}});
}

TEST_CASE("engine: a WireGuard device wg-fleet did not create is refused and left as it is, and --adopt takes it over", "[engine][adopt]") {
    Setup s;
    FakeMachine m;
    MapResolver dns;
    MemState state;  // records nothing: the device below is not ours
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    REQUIRE(m.wg.create_device("mesh"));
    auto foreign_key = model::SecretKey::generate();
    m.wg.devices.at("mesh").device.public_key = foreign_key.public_key();
    m.wg.devices.at("mesh").device.listen_port = 51999;
    m.wg.devices.at("mesh").device.peers.emplace(key_of(7), peer(7, {"10.9.9.9/32"}));
    const auto before = m.wg.devices.at("mesh").device;

    for (auto mode : {apply::Mode::plan, apply::Mode::apply}) {
        auto r = e.run(*s.fw, "c1", mode, m.now);
        REQUIRE(r.error);
        CHECK(r.error->message.find("interface mesh is a WireGuard device that wg-fleet did not create") == 0);
        CHECK(r.error->message.find("wg-fleet apply --adopt mesh") != std::string::npos);
        CHECK_FALSE(r.applied);
    }
    CHECK(m.wg.devices.at("mesh").device == before);
    CHECK(m.wg.sets.empty());
    CHECK(state.saves == 0);

    e.adopt = {"mesh"};
    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE_FALSE(planned.error);
    bool key_change = false;
    for (const auto& op : planned.plan.ops)
        if (std::holds_alternative<plan::OpSetPrivateKey>(op)) key_change = plan::disruption(op) == plan::Disruption::all_sessions;
    CHECK(key_change);  // the plan shows that adopting sets our key and what that disrupts
    auto adopted = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(adopted.ok());
    CHECK(state.owned.interfaces.count("mesh"));
    CHECK(m.wg.devices.at("mesh").device.peers.count(key_of(7)));  // its own peer is foreign: left
    // Recorded as ours now: later runs need no --adopt.
    e.adopt.clear();
    CHECK(e.run(*s.fw, "c1", apply::Mode::apply, m.now).ok());
}

TEST_CASE("engine: our route protocol on an interface that is not ours is neither read nor removed", "[engine][routes]") {
    Converged c;
    auto& [s, m, dns, state, b, e] = c;
    // Another program (or a second wg-fleet with its own state_dir) uses protocol 87 on its devices.
    m.links.routes.insert(model::Route{pfx("10.88.0.0/16"), "veth-other"});
    m.links.routes.insert(model::Route{pfx("fd00:88::/64"), "wg-other"});
    auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(r.ok());
    CHECK(r.plan.empty());
    CHECK(m.links.routes.count(model::Route{pfx("10.88.0.0/16"), "veth-other"}));
    CHECK(m.links.routes.count(model::Route{pfx("fd00:88::/64"), "wg-other"}));
    // A stale route of ours on our own interface still goes.
    m.links.routes.insert(model::Route{pfx("10.77.0.0/16"), "mesh"});
    auto again = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(again.ok());
    REQUIRE(again.plan.ops.size() == 1);
    CHECK(std::holds_alternative<plan::OpDelRoute>(again.plan.ops[0]));
}

namespace {

// /var/run is /run, as on most systems: the fake resolves that link.
class AliasFiles : public backend::FakeFiles {
public:
    backend::Result<backend::FilePlace> place(const std::string& path) override {
        auto p = FakeFiles::place(path);
        if (p && p->rest.rfind("/var/run/", 0) == 0) p->rest.erase(0, 4);
        return p;
    }
};

}  // namespace

TEST_CASE("engine: files without the marker are never overwritten (plan shows the conflict, apply the rest and fails)", "[engine][files]") {
    Setup s;
    FakeMachine m;
    const backend::FileLive theirs{
        .file = {"/run/wg_fleet_hosts", "127.0.0.1 localhost\n", 0640}, .has_marker = false, .not_regular = {}, .uid = 7, .gid = 7};
    m.files.files["/run/wg_fleet_hosts"] = theirs;
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};

    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE_FALSE(planned.error);
    CHECK(planned.plan.conflicts ==
          std::vector<std::string>{"! conflict: /run/wg_fleet_hosts exists and was not written by wg-fleet; left as is"});
    for (const auto& op : planned.plan.ops) CHECK(std::string(plan::kind(op)) != "write_file");
    CHECK_FALSE(planned.plan.converged());  // plan --detailed-exitcode exits 2
    CHECK(plan::summarize(planned.plan).find("1 conflict (a managed path wg-fleet did not write: left as is; apply exits 1") !=
          std::string::npos);

    auto applied = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    CHECK_FALSE(applied.error);
    REQUIRE(applied.applied);
    CHECK(applied.applied->ok());  // everything else is applied
    CHECK(m.wg.devices.count("mesh"));
    CHECK_FALSE(applied.ok());  // but the run fails: apply exits 1
    CHECK(m.files.writes.empty());
    CHECK(m.files.files.at("/run/wg_fleet_hosts").file == theirs.file);

    // Once nothing of theirs is there, the same config converges.
    m.files.files.erase("/run/wg_fleet_hosts");
    auto again = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    CHECK(again.ok());
    CHECK(m.files.files.at("/run/wg_fleet_hosts").has_marker);
}

TEST_CASE("engine: Caddy's reload runs after its route files change, once, and a failed one is owed until it succeeds",
          "[engine][files][caddy]") {
    const std::string base = std::string(kFleet) + "http_server: caddy\ncaddy_reload: caddy reload --config /x/Caddyfile\n";
    const std::string with_route = base + "http_routes:\n  - { name: app, node: c1, host: app.example.com, to: \"http://p1:80\" }\n";
    FakeMachine m;
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    auto reloads_in = [](const plan::Plan& p) {
        return std::count_if(p.ops.begin(), p.ops.end(), [](const plan::Op& op) { return std::holds_alternative<plan::OpReload>(op); });
    };

    Setup s(with_route.c_str());
    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    REQUIRE(reloads_in(planned.plan) == 1);
    CHECK(plan::describe(planned.plan.ops.back()) ==
          "~ reload: caddy reload --config /x/Caddyfile (the files in /etc/caddy/wg-fleet changed)");
    CHECK(m.commands.runs.empty());  // plan runs nothing

    // The reload fails: the files are written, the run fails and says why, and the reload is owed.
    m.commands.fail = backend::Error{EIO, "run `caddy reload --config /x/Caddyfile`: exited with status 1: connection refused"};
    auto failed = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    CHECK_FALSE(failed.ok());
    REQUIRE(failed.applied);
    REQUIRE(failed.applied->error);
    CHECK(failed.applied->error->message.find("exited with status 1: connection refused") != std::string::npos);
    CHECK(m.files.files.count("/etc/caddy/wg-fleet/app.caddy"));
    CHECK(state.owned.reloads == std::set<std::string>{"/etc/caddy/wg-fleet"});

    // The next run reloads though the files are as desired, with the command now configured;
    // then nothing is owed or planned.
    m.commands.fail.reset();
    std::string fixed = with_route;
    fixed.replace(fixed.find("/x/Caddyfile"), 12, "/y/Caddyfile");
    Setup s2(fixed.c_str());
    auto retried = e.run(*s2.fw, "c1", apply::Mode::apply, m.now);
    CHECK(retried.ok());
    CHECK(reloads_in(retried.plan) == 1);
    CHECK(retried.plan.ops.size() == 1);
    CHECK(m.commands.runs == std::vector<std::string>{"caddy reload --config /x/Caddyfile", "caddy reload --config /y/Caddyfile"});
    CHECK(state.owned.reloads.empty());
    auto again = e.run(*s2.fw, "c1", apply::Mode::apply, m.now);
    CHECK(again.ok());
    CHECK(again.plan.empty());
    CHECK(m.commands.runs.size() == 2);

    // Removing the route removes its file and reloads.
    Setup without(base.c_str());
    auto removed = e.run(*without.fw, "c1", apply::Mode::apply, m.now);
    CHECK(removed.ok());
    CHECK_FALSE(m.files.files.count("/etc/caddy/wg-fleet/app.caddy"));
    CHECK(reloads_in(removed.plan) == 1);
    CHECK(m.commands.runs.size() == 3);
}

TEST_CASE("engine: switching from Caddy to Traefik removes the snippets and reloads Caddy with the command recorded when they were written",
          "[engine][files][caddy]") {
    const std::string route = "http_routes:\n  - { name: app, node: c1, host: app.example.com, to: \"http://p1:80\" }\n";
    const std::string caddy = std::string(kFleet) + "http_server: caddy\ncaddy_reload: caddy reload --config /x/Caddyfile\n" + route;
    const std::string traefik = std::string(kFleet) + "http_server: traefik\n" + route;
    FakeMachine m;
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    Setup with_caddy(caddy.c_str());
    REQUIRE(e.run(*with_caddy.fw, "c1", apply::Mode::apply, m.now).ok());
    CHECK(state.owned.reload_commands == std::map<std::string, std::string>{{"/etc/caddy/wg-fleet", "caddy reload --config /x/Caddyfile"}});
    REQUIRE(m.commands.runs.size() == 1);

    // Traefik now: the snippet goes and Caddy is told, or it would serve the route on. The
    // reload fails first: it stays owed, with its command, until it succeeds.
    Setup with_traefik(traefik.c_str());
    auto planned = e.run(*with_traefik.fw, "c1", apply::Mode::plan, m.now);
    std::vector<std::string> lines;
    for (const auto& op : planned.plan.ops) lines.push_back(plan::describe(op));
    CHECK(std::count(lines.begin(), lines.end(),
                     "~ reload: caddy reload --config /x/Caddyfile (the files in /etc/caddy/wg-fleet changed)") == 1);
    m.commands.fail = backend::Error{EIO, "run `caddy reload --config /x/Caddyfile`: exited with status 1"};
    auto failed = e.run(*with_traefik.fw, "c1", apply::Mode::apply, m.now);
    CHECK_FALSE(failed.ok());
    CHECK_FALSE(m.files.files.count("/etc/caddy/wg-fleet/app.caddy"));
    CHECK(state.owned.reloads == std::set<std::string>{"/etc/caddy/wg-fleet"});
    CHECK(state.owned.reload_commands.count("/etc/caddy/wg-fleet"));
    m.commands.fail.reset();
    auto retried = e.run(*with_traefik.fw, "c1", apply::Mode::apply, m.now);
    CHECK(retried.ok());
    CHECK(m.commands.runs == std::vector<std::string>(3, "caddy reload --config /x/Caddyfile"));
    CHECK(state.owned.reloads.empty());
    CHECK(state.owned.reload_commands.empty());
    CHECK(e.run(*with_traefik.fw, "c1", apply::Mode::apply, m.now).plan.empty());
    CHECK(m.commands.runs.size() == 3);
}

TEST_CASE("engine: a non-regular file at a managed path is a conflict too", "[engine][files]") {
    Setup s;
    FakeMachine m;
    m.files.files["/run/wg_fleet_hosts"] = backend::FileLive{
        .file = {"/run/wg_fleet_hosts", "", 0777}, .has_marker = false, .not_regular = "a symbolic link", .uid = 0, .gid = 0};
    MapResolver dns;
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
    CHECK(planned.plan.conflicts ==
          std::vector<std::string>{"! conflict: /run/wg_fleet_hosts is a symbolic link, not a file wg-fleet wrote; left as is"});
}

TEST_CASE("engine: managed paths are compared where they land: one file under two names is never deleted", "[engine][files]") {
    Setup s;
    FakeMachine m;
    AliasFiles files;
    apply::Backends b{m.wg, m.links, m.sysctls, m.firewall, files};
    MapResolver dns;
    MemState state;
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    REQUIRE(e.run(*s.fw, "c1", apply::Mode::apply, m.now).ok());
    REQUIRE(files.files.count("/run/wg_fleet_hosts"));

    // The last apply wrote /var/run/wg_fleet_hosts; this config says /run/wg_fleet_hosts.
    state.owned.files = {"/var/run/wg_fleet_hosts"};
    auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(r.ok());
    for (const auto& op : r.plan.ops) CHECK(std::string(plan::kind(op)) != "remove_file");
    CHECK(files.files.count("/run/wg_fleet_hosts"));
    CHECK(state.owned.files == std::set<std::string>{"/run/wg_fleet_hosts"});
}

TEST_CASE("engine: a managed path on a key file, inside state_dir, or twice is refused before anything is written", "[engine][files]") {
    AliasFiles files;
    model::HostState desired;
    desired.interfaces.emplace("mesh", model::WgInterface{.name = "mesh"});
    model::Labels labels;
    labels.interfaces["mesh"].private_key_file = "/state/mesh.key";
    auto refuse = [&](const std::vector<std::string>& paths) {
        model::HostState d = desired;
        for (const auto& p : paths) d.files.emplace(p, model::ManagedFile{p, std::string(model::kFileMarker) + "\n", 0644});
        plan::Ownership owned;
        auto s = apply::check_file_places(files, d, labels, "/state", owned);
        return s ? std::string() : s.error().message;
    };
    CHECK(refuse({"/run/hosts"}).empty());
    CHECK(refuse({"/state//./mesh.key"}) ==
          "managed file /state//./mesh.key is the private key file /state/mesh.key; nothing applied (give it a path outside state_dir)");
    CHECK(refuse({"/state/../state/hosts"}) ==
          "managed file /state/../state/hosts lies inside state_dir /state, where wg-fleet keeps its private keys and state; nothing "
          "applied (choose a path outside it)");
    CHECK(refuse({"/run/hosts", "/var/run/hosts"}) ==
          "managed files /run/hosts and /var/run/hosts are one file; nothing applied (give each a path of its own)");
    CHECK(files.writes.empty());
}

namespace {

// Counts the device reads made before each journal line: an edit answered from the cache
// journals its change before reading anything.
class ReadsAtRecord : public apply::Journal {
public:
    explicit ReadsAtRecord(const backend::FakeWireGuard& wg) : wg_(wg) {}
    std::vector<std::pair<std::string, size_t>> lines;  // op line, device reads so far
    void record(const std::string& op_line, const backend::Status&) override { lines.emplace_back(op_line, wg_.reads.size()); }

private:
    const backend::FakeWireGuard& wg_;
};

// kFleet with p1 routing a LAN: one changed peer on c1's device.
std::string fleet_with_p1_route(const std::string& route) {
    std::string text = kFleet;
    const std::string from = "p1: { controller: c1, ";
    text.replace(text.find(from), from.size(), "p1: { controller: c1, routes: [" + route + "], ");
    return text;
}

const model::Key kP1 = *model::Key::from_base64("qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=");

// Converged, then one tick with a cache: the cache holds the devices that tick verified.
struct Cached : Converged {
    apply::LiveCache cache;
    ReadsAtRecord journal{m.wg};
    Cached() {
        e.cache = &cache;
        e.journal = &journal;
        auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
        REQUIRE(r.ok());
        REQUIRE(cache.live);
        m.wg.reads.clear();
    }
};

}  // namespace

TEST_CASE("engine: an edit is diffed against the devices verified last and journaled before any read, a tick reads again",
          "[engine][cache]") {
    Cached c;
    // p1 routes a LAN (forwarding is now ours); then the edit moves that route.
    Setup routed(fleet_with_p1_route("10.8.0.0/24").c_str());
    REQUIRE(c.e.run(*routed.fw, "c1", apply::Mode::apply, c.m.now).ok());
    c.m.wg.reads.clear();
    c.journal.lines.clear();
    Setup edited(fleet_with_p1_route("10.9.0.0/24").c_str());
    const int saves = c.state.saves;
    auto r = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now, nullptr, apply::LiveRead::cached_devices);
    REQUIRE(r.ok());
    CHECK(r.used_cache);
    CHECK(c.state.saves == saves);  // nothing new to own: no record written ahead or after
    INFO(fmt::format("{}", fmt::join(lines_of(r.plan), "\n")));
    REQUIRE(c.journal.lines.size() == r.plan.ops.size());
    CHECK(std::count_if(c.journal.lines.begin(), c.journal.lines.end(),
                        [](const auto& l) { return l.first.find("peer p1") != std::string::npos; }) == 1);
    for (const auto& [line, reads] : c.journal.lines) CHECK(reads == 0);  // applied before any read
    CHECK(c.m.wg.reads == std::vector<std::string>{"mesh"});              // the verification only
    REQUIRE(r.leftover);
    CHECK(r.leftover->empty());
    CHECK(c.cache.live);  // verified: kept for the next edit

    // A tick trusts nothing it did not read.
    c.m.wg.reads.clear();
    auto t = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now, nullptr, apply::LiveRead::full);
    REQUIRE(t.ok());
    CHECK_FALSE(t.used_cache);
    CHECK(t.plan.empty());
    CHECK(c.m.wg.reads == std::vector<std::string>{"mesh"});
}

TEST_CASE("engine: a change made by hand between runs is found by the next tick", "[engine][cache]") {
    Cached c;
    c.m.wg.devices.at("mesh").device.peers.erase(kP1);
    auto t = c.e.run(*c.s.fw, "c1", apply::Mode::apply, c.m.now);
    REQUIRE(t.ok());
    CHECK_FALSE(t.used_cache);
    REQUIRE(t.plan.ops.size() == 1);
    CHECK(plan::describe(t.plan.ops[0]).rfind("+ peer p1", 0) == 0);
    CHECK(c.m.wg.devices.at("mesh").device.peers.count(kP1));
}

TEST_CASE("engine: an edit on a cache made stale by a change by hand is verified, found out and converged from a full read",
          "[engine][cache]") {
    Cached c;
    c.m.wg.devices.at("mesh").device.peers.erase(kP1);  // the cache still has p1
    Setup edited(fleet_with_p1_route("10.9.0.0/24").c_str());
    auto r = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now, nullptr, apply::LiveRead::cached_devices);
    REQUIRE(r.ok());
    REQUIRE(r.leftover);
    CHECK(r.leftover->empty());
    REQUIRE_FALSE(r.warnings.empty());
    CHECK(r.warnings[0].find("out of date") != std::string::npos);
    const auto& dev = c.m.wg.devices.at("mesh").device;
    REQUIRE(dev.peers.count(kP1));
    CHECK(std::count(dev.peers.at(kP1).allowed_ips.begin(), dev.peers.at(kP1).allowed_ips.end(), pfx("10.9.0.0/24")) == 1);
    CHECK(c.cache.live);
}

TEST_CASE("engine: a failed apply leaves no cache and the next edit reads the devices", "[engine][cache]") {
    Cached c;
    Setup edited(fleet_with_p1_route("10.9.0.0/24").c_str());
    c.m.wg.fail_next = backend::Error{EIO, "injected"};
    auto failed = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now);
    CHECK_FALSE(failed.ok());
    CHECK_FALSE(c.cache.live);

    c.m.wg.reads.clear();
    auto r = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now, nullptr, apply::LiveRead::cached_devices);
    REQUIRE(r.ok());
    CHECK_FALSE(r.used_cache);
    CHECK(c.m.wg.reads.size() == 2);  // before the diff and the verification
    CHECK(c.cache.live);
}

TEST_CASE("engine: an ownership record someone else changed since the last run makes an edit read the devices", "[engine][cache]") {
    Cached c;
    c.state.owned.peers["mesh"].insert(key_of(77));  // as another `wg-fleet apply` would have left it
    Setup edited(fleet_with_p1_route("10.9.0.0/24").c_str());
    auto r = c.e.run(*edited.fw, "c1", apply::Mode::apply, c.m.now, nullptr, apply::LiveRead::cached_devices);
    REQUIRE(r.ok());
    CHECK_FALSE(r.used_cache);
    CHECK(c.m.wg.reads.size() == 2);
}

TEST_CASE("engine: a peer removed by hand comes back with the endpoint last seen for it", "[engine][cache]") {
    Cached c;
    // p1 dials in: no endpoint is desired; the device learned one from its packets.
    c.m.wg.devices.at("mesh").device.peers.at(kP1).endpoint = ep("203.0.113.7:4444");
    auto seen = c.e.run(*c.s.fw, "c1", apply::Mode::apply, c.m.now);
    REQUIRE(seen.ok());
    CHECK(seen.plan.empty());  // a learned endpoint is left alone
    c.m.wg.devices.at("mesh").device.peers.erase(kP1);
    auto r = c.e.run(*c.s.fw, "c1", apply::Mode::apply, c.m.now);
    REQUIRE(r.ok());
    REQUIRE(r.plan.ops.size() == 1);
    const auto& dev = c.m.wg.devices.at("mesh").device;
    REQUIRE(dev.peers.count(kP1));
    CHECK(dev.peers.at(kP1).endpoint == ep("203.0.113.7:4444"));
    REQUIRE(r.leftover);
    CHECK(r.leftover->empty());

    // Without a last verified state (a one-shot apply) there is nothing to restore from.
    c.e.cache = nullptr;
    c.m.wg.devices.at("mesh").device.peers.erase(kP1);
    auto once = c.e.run(*c.s.fw, "c1", apply::Mode::apply, c.m.now);
    REQUIRE(once.ok());
    CHECK_FALSE(c.m.wg.devices.at("mesh").device.peers.at(kP1).endpoint);
}

TEST_CASE("engine: covers(before, after) says exactly when the record written ahead is the record as it stands", "[engine][state]") {
    plan::Ownership before;
    before.interfaces = {"wg0"};
    before.peers["wg0"] = {key_of(1), key_of(2)};
    before.endpoints["wg0"][key_of(1)] = ep("192.0.2.1:51820");
    before.files = {"/etc/hosts.d/a"};
    before.sysctls["net/ipv4/ip_forward"] = plan::OwnedSysctl{};
    std::vector<plan::Ownership> afters;
    plan::Ownership same_less = before;
    same_less.peers["wg0"].erase(key_of(2));
    same_less.endpoints["wg0"].clear();  // endpoints stay as they were: not a difference
    afters.push_back(same_less);
    auto more_peer = before;
    more_peer.peers["wg0"].insert(key_of(3));
    afters.push_back(more_peer);
    auto more_if = before;
    more_if.interfaces.insert("wg1");
    afters.push_back(more_if);
    auto more_file = before;
    more_file.files.insert("/etc/hosts.d/b");
    afters.push_back(more_file);
    auto new_eps = before;
    new_eps.endpoints["wg1"];
    afters.push_back(new_eps);
    auto sysctl = before;
    sysctl.sysctls["net/ipv6/conf/all/forwarding"] = plan::OwnedSysctl{};
    afters.push_back(sysctl);
    before.reload_commands["/etc/caddy/wg-fleet"] = "caddy reload";
    auto other_command = before;
    other_command.reload_commands["/etc/caddy/wg-fleet"] = "systemctl reload caddy";
    afters.push_back(other_command);
    auto other_dir = before;
    other_dir.reload_commands["/srv/caddy"] = "caddy reload";
    afters.push_back(other_dir);
    for (const auto& after : afters) CHECK(apply::covers(before, after) == (apply::write_ahead(before, after) == before));
    // A directory no longer configured keeps its command in the record until its files are gone.
    CHECK(apply::write_ahead(before, other_dir).reload_commands.size() == 2);
    CHECK_FALSE(apply::covers(before, other_command));
    CHECK(apply::covers(before, same_less));
    CHECK_FALSE(apply::covers(before, more_peer));
}

TEST_CASE("engine: covers(before, desired, sysctls) is covers(before, the record desired leads to), without building that record",
          "[engine][state]") {
    // Small random records and desired states: interfaces, their peers (with and without an
    // endpoint), entries present or missing in each part of the record, files and sysctls.
    std::mt19937 rng(9);
    auto coin = [&] { return rng() % 2 == 0; };
    const std::vector<std::string> ifs{"wg0", "wg1"}, files{"/etc/a", "/etc/b"};
    const std::vector<std::string> sysctl_keys{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"};
    auto sysctls = [&] {
        std::map<std::string, plan::OwnedSysctl> out;
        for (const auto& k : sysctl_keys)
            if (coin()) out[k] = plan::OwnedSysctl{.original = "0", .value = coin() ? "1" : "2"};
        return out;
    };
    int covered = 0, not_covered = 0;
    for (int round = 0; round < 4000; ++round) {
        model::HostState desired;
        for (const auto& name : ifs) {
            if (!coin()) continue;
            auto& w = desired.interfaces[name];
            w.name = name;
            for (int k = 1; k <= 4; ++k)
                if (coin()) w.peers.emplace(key_of(k), coin() ? peer(k, {}, "192.0.2.1:51820") : peer(k, {}));
        }
        for (const auto& f : files)
            if (coin()) desired.files[f] = model::ManagedFile{.path = f, .content = "", .mode = 0644};
        plan::Ownership before;
        for (const auto& name : ifs) {
            if (coin()) before.interfaces.insert(name);
            if (coin()) before.endpoints[name];
            if (!coin()) continue;
            auto& keys = before.peers[name];
            for (int k = 1; k <= 4; ++k)
                if (rng() % 4 != 0) keys.insert(key_of(k));
        }
        for (const auto& f : files)
            if (rng() % 4 != 0) before.files.insert(f);
        before.sysctls = sysctls();
        const auto after_sysctls = coin() ? before.sysctls : sysctls();
        model::Labels labels;
        if (coin()) labels.reload = model::FileReload{.dir = coin() ? "/etc/caddy/wg-fleet" : "/srv/caddy", .command = "caddy reload"};
        if (coin()) before.reload_commands["/etc/caddy/wg-fleet"] = coin() ? "caddy reload" : "true";
        plan::Ownership after = plan::ownership_after(desired, labels);
        after.sysctls = after_sysctls;
        const bool want = apply::covers(before, after);
        INFO("round " << round);
        REQUIRE(apply::covers(before, desired, after_sysctls, labels.reload) == want);
        (want ? covered : not_covered)++;
    }
    CHECK(covered > 100);
    CHECK(not_covered > 100);
}

TEST_CASE("engine: a desired state kept by the cache resolves its endpoint names again on every run", "[engine][desired-cache]") {
    Setup s;
    FakeMachine m;
    MapResolver dns;
    dns.names["vpn2.example.com"] = *model::IpAddr::parse("198.51.100.2");
    MemState state;
    auto b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    inputs::CachedDesired c{
        .key = {}, .inputs = {}, .userspace = std::nullopt, .notes = "", .notes_each = "", .desired = apply::render_desired(*s.fw, "c1")};
    auto kept = inputs::decode_cached(inputs::encode_cached(c));
    REQUIRE(kept);
    CHECK(*kept == c);
    auto c2 = *model::Key::from_base64("4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=");
    CHECK(kept->desired.state.interfaces.at("mesh").peers.at(c2).endpoint == ep("vpn2.example.com:51821"));

    REQUIRE(e.run(kept->desired, "c1", apply::Mode::apply, m.now).ok());
    CHECK(m.wg.devices.at("mesh").device.peers.at(c2).endpoint == ep("198.51.100.2:51821"));
    // The name moved: the next run from the same kept state asks again and follows it.
    dns.asked.clear();
    dns.names["vpn2.example.com"] = *model::IpAddr::parse("198.51.100.9");
    auto again = e.run(kept->desired, "c1", apply::Mode::apply, m.now);
    REQUIRE(again.ok());
    CHECK(dns.asked == std::vector<std::string>{"vpn2.example.com"});
    CHECK(m.wg.devices.at("mesh").device.peers.at(c2).endpoint == ep("198.51.100.9:51821"));
    CHECK(kept->desired.state.interfaces.at("mesh").peers.at(c2).endpoint == ep("vpn2.example.com:51821"));
}

namespace {

// An engine over the fakes whose firewall names its generation, with a record to keep; not run yet.
struct KeptFirewallRun {
    Setup s;
    FakeMachine m;
    MapResolver dns;
    MemState state;
    backend::FakeKeptFirewall kept;
    apply::Backends b = m.backends();
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    KeptFirewallRun() {
        m.firewall.generation = "g";
        dns.names["vpn2.example.com"] = *model::IpAddr::parse("198.51.100.2");
        e.kept_firewall = &kept;
    }
};

}  // namespace

// The firewall kept from the last verified apply: a run does not read the table while the
// ruleset is at the recorded generation and the desired rules have the recorded digest; any
// change moves the generation, and then the table is read and repaired as always.
TEST_CASE_METHOD(KeptFirewallRun,
                 "engine: the firewall kept by a verified apply spares reading the table until the ruleset or the desired rules change",
                 "[engine][kept_firewall]") {
    auto first = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(first.ok());
    REQUIRE_FALSE(m.firewall.rules.empty());
    REQUIRE(kept.kept);
    CHECK(kept.kept->generation == m.firewall.generation);
    CHECK(kept.kept->digest == apply::firewall_digest(m.firewall.rules));
    const int reads = m.firewall.table_reads;
    const int saves = kept.saves;

    auto noop = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
    REQUIRE(noop.ok());
    CHECK(noop.plan.empty());
    CHECK(m.firewall.table_reads == reads);  // the table was not read
    REQUIRE(noop.live);
    CHECK(noop.live->firewall_from_kept);
    CHECK(noop.live->state.firewall == m.firewall.rules);
    CHECK(kept.saves == saves);  // the record stands

    SECTION("a rule deleted by someone else (a commit): found and repaired") {
        const std::string id = m.firewall.rules.begin()->first;
        const model::FwRule gone = m.firewall.rules.begin()->second;
        m.firewall.rules.erase(id);
        m.firewall.generation += "hand";
        auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
        REQUIRE_FALSE(planned.error);
        CHECK(lines_of(planned.plan).size() == 1);
        CHECK(kept.saves == saves);  // plan keeps nothing
        auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
        REQUIRE(r.ok());
        CHECK(m.firewall.table_reads > reads);
        CHECK(m.firewall.rules.count(id) == 1);
        CHECK(m.firewall.rules.at(id) == gone);
        REQUIRE(kept.kept);
        CHECK(kept.kept->generation == m.firewall.generation);  // the repair's verifying read
    }
    SECTION("damage (something in the table apply would not build): the table is read and repaired; no damaged read is kept") {
        m.firewall.damage.push_back(model::FwDamage{.what = model::FwDamage::What::set, .handle = 0, .name = "theirs", .decoded = {}});
        m.firewall.generation += "hand";
        auto planned = e.run(*s.fw, "c1", apply::Mode::plan, m.now);
        REQUIRE_FALSE(planned.error);
        CHECK_FALSE(planned.plan.empty());
        auto r = e.run(*s.fw, "c1", apply::Mode::apply, m.now);
        REQUIRE(r.ok());
        CHECK(m.firewall.damage.empty());
        REQUIRE(kept.kept);
        CHECK(kept.kept->generation == m.firewall.generation);
    }
    SECTION("other desired rules (one more): the digest differs, the table is read and changed") {
        apply::Desired d = apply::render_desired(*s.fw, "c1");
        const model::FwRule extra{.id = "accept-extra", .kind = model::FwKind::accept_udp, .proto = model::Proto::udp, .port = 51999};
        d.state.firewall.emplace(extra.id, extra);
        auto r = e.run(std::move(d), "c1", apply::Mode::apply, m.now);
        REQUIRE(r.ok());
        CHECK(lines_of(r.plan).size() == 1);
        CHECK(m.firewall.table_reads > reads);
        REQUIRE(m.firewall.rules.count("accept-extra") == 1);
        CHECK(m.firewall.rules.at("accept-extra") == extra);
        REQUIRE(kept.kept);
        CHECK(kept.kept->digest == apply::firewall_digest(m.firewall.rules));
    }
    SECTION("a firewall that names no generation: nothing is kept, every run reads the table") {
        m.firewall.generation.clear();
        kept.kept.reset();
        REQUIRE(e.run(*s.fw, "c1", apply::Mode::apply, m.now).ok());
        CHECK_FALSE(kept.kept);
        CHECK(m.firewall.table_reads == reads + 1);
    }
}

// Under watch, an edit of the firewall rules diffs against the rules the last verified run left
// (LiveCache::firewall) while the ruleset is at the generation of the record standing for them:
// the table is read only to verify. A commit by anyone, or a record that stands for other rules,
// makes the edit read the table first, as without the cache.
TEST_CASE_METHOD(KeptFirewallRun,
                 "engine: an edit of the firewall under watch diffs against the rules verified last while the record stands for them",
                 "[engine][kept_firewall][cache]") {
    apply::LiveCache cache;
    e.cache = &cache;
    REQUIRE(e.run(*s.fw, "c1", apply::Mode::apply, m.now).ok());
    REQUIRE(kept.kept);
    CHECK(cache.firewall == m.firewall.rules);
    CHECK(cache.firewall_digest == kept.kept->digest);

    const model::FwRule extra{.id = "accept-extra", .kind = model::FwKind::accept_udp, .proto = model::Proto::udp, .port = 51999};
    auto with_extra = [&] {
        apply::Desired d = apply::render_desired(*s.fw, "c1");
        d.state.firewall.emplace(extra.id, extra);
        return d;
    };
    // Runs an edit on the cached devices; returns how many times it read the table.
    auto edit = [&](apply::Desired d, size_t ops) {
        const int before = m.firewall.table_reads;
        auto r = e.run(std::move(d), "c1", apply::Mode::apply, m.now, nullptr, apply::LiveRead::cached_devices);
        REQUIRE(r.ok());
        CHECK(r.used_cache);
        INFO(fmt::format("{}", fmt::join(lines_of(r.plan), "\n")));
        CHECK(lines_of(r.plan).size() == ops);
        REQUIRE(r.leftover);
        CHECK(r.leftover->empty());
        return m.firewall.table_reads - before;
    };

    SECTION("a rule added, then removed: each read only to verify") {
        CHECK(edit(with_extra(), 1) == 1);
        CHECK(m.firewall.rules.count("accept-extra") == 1);
        CHECK(cache.firewall == m.firewall.rules);
        CHECK(edit(apply::render_desired(*s.fw, "c1"), 1) == 1);
        CHECK(m.firewall.rules.count("accept-extra") == 0);
    }
    SECTION("a rule deleted by hand before the edit: the table is read, the rule restored with the edit") {
        const std::string id = m.firewall.rules.begin()->first;
        m.firewall.rules.erase(id);
        m.firewall.generation += "hand";
        CHECK(edit(with_extra(), 2) == 2);
        CHECK(m.firewall.rules.count(id) == 1);
    }
    SECTION("a record another run wrote for other rules at the same generation: the table is read") {
        kept.kept->digest = apply::firewall_digest({{extra.id, extra}});
        CHECK(edit(with_extra(), 1) == 2);
    }
    SECTION("a tick reads everything and leaves a cache that serves the next edit the same") {
        REQUIRE(e.run(*s.fw, "c1", apply::Mode::apply, m.now, nullptr, apply::LiveRead::full).ok());
        CHECK(edit(with_extra(), 1) == 1);
    }
}
