// The engine on fakes: keys are generated only by apply, DNS names resolve in their own phase
// (an unresolvable one leaves that peer without an endpoint and warns), ownership is recorded,
// and the post-apply verification finds nothing left.
#include <catch2/catch.hpp>

#include "apply/engine.hpp"
#include "config/parse.hpp"
#include "fixture.hpp"
#include "plan/sysctls.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using namespace wgf::test;

namespace {

class MapResolver : public apply::Resolver {
public:
    std::map<std::string, model::IpAddr> names;
    std::vector<std::string> asked;
    std::optional<model::IpAddr> resolve(const std::string& host) override {
        asked.push_back(host);
        auto it = names.find(host);
        if (it == names.end()) return std::nullopt;
        return it->second;
    }
};

class MemState : public apply::StateStore {
public:
    plan::Ownership owned;
    int saves = 0;
    backend::Result<plan::Ownership> load() override { return owned; }
    backend::Status save(const plan::Ownership& o) override {
        owned = o;
        ++saves;
        return backend::Status::ok();
    }
};

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

TEST_CASE("engine: plan reads keys only; apply generates one, converges and verifies", "[engine]") {
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
    REQUIRE(planned.warnings.size() == 1);
    CHECK(planned.warnings[0] == "mesh: no private key yet at /state/mesh.key; apply generates it");
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

TEST_CASE("engine: an endpoint that does not resolve leaves that peer without one; the rest converges", "[engine][dns]") {
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
    auto back = apply::ownership_from_json(apply::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
    CHECK_FALSE(apply::ownership_from_json("{not json"));
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
    auto back = apply::ownership_from_json(apply::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
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

TEST_CASE("engine: turning IPv6 forwarding on raises accept_ra 1 -> 2 first; wg-fleet restores what it changed once forwarding is no longer needed",
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
    CHECK(plan::diff(desired, live, owned).empty());
    // Once forwarding is off, it goes back.
    live.sysctls[plan::kIpv6Forwarding] = "0";
    model::HostState none;
    plan::complete_sysctls(none, live, owned);
    auto p = plan::diff(none, live, owned);
    REQUIRE(p.ops.size() == 1);
    CHECK(plan::describe(p.ops[0]) == "~ sysctl net/ipv6/conf/eth0/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)");
}

TEST_CASE("state: owned sysctls and their originals survive a JSON round trip; a record without them loads", "[engine][state]") {
    plan::Ownership o;
    o.interfaces = {"mesh"};
    o.peers["mesh"] = {};
    o.endpoints["mesh"] = {};
    o.sysctls["net/ipv6/conf/all/forwarding"] = {"0", "1"};
    o.sysctls["net/ipv6/conf/eth0/accept_ra"] = {"1", "2"};
    auto back = apply::ownership_from_json(apply::ownership_to_json(o));
    REQUIRE(back);
    CHECK(*back == o);
    auto old = apply::ownership_from_json(R"({"version":1,"interfaces":["mesh"],"peers":{"mesh":[]},"endpoints":{"mesh":{}},"files":[]})");
    REQUIRE(old);
    CHECK(old->sysctls.empty());
    // A record of a sysctl wg-fleet never sets, or of a value it never writes, is not restored.
    auto odd = apply::ownership_from_json(R"({"version":1,"interfaces":[],"peers":{},"endpoints":{},"files":[],"sysctls":{
        "kernel/core_pattern":{"original":"|/tmp/x","value":"core"},
        "net/ipv6/conf/eth0/accept_ra":{"original":"1 2","value":"2"},
        "net/ipv6/conf/../../kernel/accept_ra":{"original":"1","value":"2"},
        "net/ipv6/conf/eth1/accept_ra":{"original":"1","value":"2"}}})");
    REQUIRE(odd);
    CHECK(odd->sysctls == std::map<std::string, plan::OwnedSysctl>{{"net/ipv6/conf/eth1/accept_ra", {"1", "2"}}});
}
