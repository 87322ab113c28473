// linux_::Rtnl against the real kernel, inside namespaces the tests create: links, addresses
// (IPv6 without DAD), routes tagged with our protocol (foreign routes untouched), and address
// changes paced by linux/userspace_pacing on a wireguard-go device.
#include <algorithm>
#include <cerrno>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "linux/rtnl.hpp"
#include "linux/userspace_pacing.hpp"
#include "support.hpp"

using wgf::backend::kRouteProtocol;
using wgf::linux_::PacingOptions;
using wgf::linux_::Rtnl;
using wgf::linux_::UserspacePacing;
using wgf::linux_::UserspaceProbe;
using wgf::model::Prefix;
using wgf::model::Route;
using namespace wgf::test;

namespace {

Prefix P(const char* text) {
    auto p = Prefix::parse(text);
    REQUIRE(p);
    return *p;
}

// Runs a command in the namespace and requires it to succeed.
std::string must(const Netns& ns, const std::string& cmd) {
    auto r = ns.sh(cmd);
    INFO(cmd << "\n" << r.out);
    REQUIRE(r.status == 0);
    return r.out;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// A standalone link to configure: `dummy`, or `ifb` on kernels built without the dummy driver
// (like this machine's); both are up-able with carrier and take addresses and routes. Returns
// the kind created.
std::string add_dummy(const Netns& ns, const std::string& name) {
    for (const char* kind : {"dummy", "ifb"})
        if (ns.sh("ip link add " + name + " type " + kind).status == 0) return kind;
    FAIL("cannot create a dummy or ifb link");
    return {};
}

}  // namespace

TEST_CASE("rtnl: read_link set_mtu and set_up on a dummy and a veth", "[rtnl]") {
    if (!netns_available()) return;
    Netns a("wgra"), b("wgrb");
    const std::string d0_kind = add_dummy(a, "d0");
    veth_pair(a, "va", "10.1.0.1/24", b, "vb", "10.1.0.2/24");
    InNetns in(a);
    Rtnl rtnl;
    REQUIRE(rtnl.status());

    auto d0 = rtnl.read_link("d0");
    REQUIRE(d0);
    REQUIRE(d0->has_value());
    CHECK((*d0)->name == "d0");
    CHECK((*d0)->kind == d0_kind);
    CHECK((*d0)->mtu == 1500);
    CHECK_FALSE((*d0)->up);
    CHECK(std::to_string((*d0)->ifindex) + "\n" == must(a, "cat /sys/class/net/d0/ifindex"));

    auto va = rtnl.read_link("va");
    REQUIRE(va);
    REQUIRE(va->has_value());
    CHECK((*va)->kind == "veth");
    CHECK((*va)->up);

    auto missing = rtnl.read_link("nope0");
    INFO((missing ? "" : missing.error().message));
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());

    REQUIRE(rtnl.set_mtu("d0", 1280));
    REQUIRE(rtnl.set_up("d0", true));
    d0 = rtnl.read_link("d0");
    REQUIRE(d0);
    REQUIRE(d0->has_value());
    CHECK((*d0)->mtu == 1280);
    CHECK((*d0)->up);
    auto shown = must(a, "ip link show d0");
    CHECK(contains(shown, "mtu 1280"));
    CHECK(contains(shown, ",UP"));

    REQUIRE(rtnl.set_up("d0", false));
    d0 = rtnl.read_link("d0");
    REQUIRE(d0);
    CHECK_FALSE((*d0)->up);
    CHECK((*d0)->mtu == 1280);

    // The veth's other flags survive a change of IFF_UP alone.
    REQUIRE(rtnl.set_mtu("va", 1400));
    auto va_shown = must(a, "ip link show va");
    CHECK(contains(va_shown, "mtu 1400"));
    CHECK(contains(va_shown, "BROADCAST,MULTICAST"));

    auto bad = rtnl.set_mtu("nope0", 1280);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == ENODEV);
    CHECK(bad.error().message == "set mtu 1280 dev nope0: No such device (ENODEV)");

    // A veth refuses an MTU below its minimum of 68; the kernel's errno comes through.
    auto small = rtnl.set_mtu("va", 10);
    REQUIRE_FALSE(small);
    CHECK(small.error().message == "set mtu 10 dev va: Invalid argument (EINVAL)");
}

TEST_CASE("rtnl: IPv6 (no DAD) and IPv4 addresses read back - again is EEXIST - then removed", "[rtnl]") {
    if (!netns_available()) return;
    Netns ns("wgrd");
    add_dummy(ns, "d0");
    must(ns, "ip link set d0 up");
    InNetns in(ns);
    Rtnl rtnl;
    REQUIRE(rtnl.status());

    const std::vector<Prefix> want = {P("10.20.0.1/16"), P("fd00:1::5/64"), P("fd00:2::9/128")};
    for (const auto& p : {want[1], want[0], want[2]}) {
        auto s = rtnl.add_address("d0", p);
        INFO(p.str() << ": " << (s ? "" : s.error().message));
        REQUIRE(s);
    }

    auto got = rtnl.read_addresses("d0");
    REQUIRE(got);
    CHECK(got->prefixes() == want);  // unmasked, sorted; the kernel's fe80:: address is left out

    auto v6 = must(ns, "ip -6 addr show dev d0");
    CHECK(contains(v6, "fd00:1::5/64"));
    CHECK(contains(v6, "fe80::"));  // there, but not ours to report
    // The connected prefix route is wanted (no IFA_F_NOPREFIXROUTE).
    CHECK(contains(must(ns, "ip -6 route show dev d0"), "fd00:1::/64 proto kernel"));
    CHECK(contains(must(ns, "ip -4 route show dev d0"), "10.20.0.0/16 proto kernel"));

    auto again = rtnl.add_address("d0", want[1]);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == EEXIST);
    CHECK(again.error().message == "add address fd00:1::5/64 dev d0: File exists (EEXIST)");
    auto again4 = rtnl.add_address("d0", want[0]);
    REQUIRE_FALSE(again4);
    CHECK(again4.error().code == EEXIST);

    auto no_dev = rtnl.add_address("nope0", want[1]);
    REQUIRE_FALSE(no_dev);
    CHECK(no_dev.error().message == "add address fd00:1::5/64 dev nope0: No such device (ENODEV)");

    for (const auto& p : want) REQUIRE(rtnl.del_address("d0", p));
    got = rtnl.read_addresses("d0");
    REQUIRE(got);
    CHECK(got->empty());
    CHECK_FALSE(contains(must(ns, "ip addr show dev d0"), "fd00:1::5"));

    auto gone = rtnl.del_address("d0", want[1]);
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code == EADDRNOTAVAIL);

    auto missing = rtnl.read_addresses("nope0");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ENODEV);
}

TEST_CASE("rtnl: an IPv6 address is usable at once (no DAD) on a link that does DAD", "[rtnl]") {
    if (!netns_available()) return;
    // dummy, ifb, tun and wireguard links are NOARP and never run DAD; a veth with carrier does,
    // for about a second, during which the address is "tentative" and cannot be bound.
    Netns a("wgrn"), b("wgro");
    veth_pair(a, "va", "10.1.0.1/24", b, "vb", "10.1.0.2/24");
    InNetns in(a);
    Rtnl rtnl;
    REQUIRE(rtnl.status());
    // DAD lasts dad_transmits x retrans_time: 30 s here, so "tentative" cannot end before we look.
    must(a, "sysctl -qw net.ipv6.neigh.va.retrans_time_ms=30000");
    must(a, "ip -6 addr add fd00:3::2/64 dev va");
    CHECK(contains(must(a, "ip -6 addr show dev va"), "tentative"));  // DAD is running on va

    REQUIRE(rtnl.add_address("va", P("fd00:3::1/64")));
    auto v6 = must(a, "ip -6 addr show dev va to fd00:3::1/128");
    CHECK(contains(v6, "fd00:3::1/64"));
    CHECK_FALSE(contains(v6, "tentative"));
    CHECK(contains(must(a, "ip -6 route show dev va"), "fd00:3::/64 proto kernel"));
}

TEST_CASE("rtnl: our routes only - foreign routes are neither read nor deleted", "[rtnl]") {
    if (!netns_available()) return;
    Netns a("wgrr"), b("wgrs");
    add_dummy(a, "d0");
    must(a, "ip link set d0 up && ip addr add 10.5.0.1/24 dev d0");
    veth_pair(a, "va", "10.1.0.1/24", b, "vb", "10.1.0.2/24");
    InNetns in(a);
    Rtnl rtnl;
    REQUIRE(rtnl.status());

    // Foreign: another protocol in main, and our protocol in another table; kernel routes exist too.
    must(a, "ip route add 10.99.0.0/16 dev d0 proto static");
    must(a, "ip -6 route add fd00:99::/64 dev d0 proto static");
    must(a, fmt::format("ip route add 10.77.0.0/16 dev d0 proto {} table 100", kRouteProtocol));

    auto none = rtnl.read_routes({"d0", "va"});
    REQUIRE(none);
    CHECK(none->empty());

    const std::set<Route> ours = {
        {P("10.20.0.0/16"), "d0"},
        {P("10.30.0.0/24"), "va"},
        {P("fd00:20::/56"), "d0"},
        {P("fd00:98::/64"), "va"},
    };
    for (const auto& r : ours) {
        auto s = rtnl.add_route(r);
        INFO(r.dst.str() << " dev " << r.dev << ": " << (s ? "" : s.error().message));
        REQUIRE(s);
    }
    auto got = rtnl.read_routes({"d0", "va"});
    REQUIRE(got);
    CHECK(*got == ours);
    // Scoped to the devices asked for: our protocol on another device is not read.
    auto only_d0 = rtnl.read_routes({"d0", "nope0"});
    REQUIRE(only_d0);
    CHECK(*only_d0 == std::set<Route>{{P("10.20.0.0/16"), "d0"}, {P("fd00:20::/56"), "d0"}});
    auto none_asked = rtnl.read_routes({});
    REQUIRE(none_asked);
    CHECK(none_asked->empty());

    // iproute2 sees them with our protocol, scope link, in main.
    auto shown = must(a, fmt::format("ip route show table main proto {}", kRouteProtocol));
    CHECK(contains(shown, "10.20.0.0/16 dev d0 scope link"));
    CHECK(contains(shown, "10.30.0.0/24 dev va scope link"));
    CHECK(contains(must(a, fmt::format("ip -6 route show table main proto {}", kRouteProtocol)), "fd00:20::/56 dev d0"));

    auto again = rtnl.add_route({P("10.20.0.0/16"), "d0"});
    REQUIRE_FALSE(again);
    CHECK(again.error().code == EEXIST);
    CHECK(again.error().message == "add route 10.20.0.0/16 dev d0: File exists (EEXIST)");
    // IPv6 keys a route by destination and metric, not device: a foreign route with the same
    // destination blocks ours instead of being replaced.
    auto clash6 = rtnl.add_route({P("fd00:99::/64"), "va"});
    REQUIRE_FALSE(clash6);
    CHECK(clash6.error().code == EEXIST);
    auto again6 = rtnl.add_route({P("fd00:20::/56"), "d0"});
    REQUIRE_FALSE(again6);
    CHECK(again6.error().code == EEXIST);

    // Host bits are masked off on the way in, as on the way out.
    REQUIRE(rtnl.add_route({P("10.40.1.2/16"), "d0"}));
    got = rtnl.read_routes({"d0", "va"});
    REQUIRE(got);
    CHECK(got->count(Route{P("10.40.0.0/16"), "d0"}) == 1);
    REQUIRE(rtnl.del_route({P("10.40.0.0/16"), "d0"}));

    // Not ours: refused by the kernel because the protocol differs; the route survives.
    auto foreign4 = rtnl.del_route({P("10.99.0.0/16"), "d0"});
    REQUIRE_FALSE(foreign4);
    CHECK(foreign4.error().code == ESRCH);
    CHECK(foreign4.error().message == "del route 10.99.0.0/16 dev d0: No such process (ESRCH)");
    auto foreign6 = rtnl.del_route({P("fd00:99::/64"), "d0"});
    REQUIRE_FALSE(foreign6);
    CHECK(foreign6.error().code == ESRCH);
    auto kernel_route = rtnl.del_route({P("10.5.0.0/24"), "d0"});
    REQUIRE_FALSE(kernel_route);
    auto other_table = rtnl.del_route({P("10.77.0.0/16"), "d0"});
    REQUIRE_FALSE(other_table);

    for (const auto& r : ours) REQUIRE(rtnl.del_route(r));
    got = rtnl.read_routes({"d0", "va"});
    REQUIRE(got);
    CHECK(got->empty());

    CHECK(contains(must(a, "ip route show 10.99.0.0/16"), "proto static"));
    CHECK(contains(must(a, "ip -6 route show fd00:99::/64"), "dev d0 proto static"));
    CHECK(contains(must(a, "ip route show 10.5.0.0/24"), "proto kernel"));
    CHECK(contains(must(a, "ip route show table 100"), "10.77.0.0/16"));

    auto gone = rtnl.del_route({P("10.20.0.0/16"), "d0"});
    REQUIRE_FALSE(gone);
    CHECK(gone.error().code == ESRCH);
    auto no_dev = rtnl.add_route({P("10.20.0.0/16"), "nope0"});
    REQUIRE_FALSE(no_dev);
    CHECK(no_dev.error().code == ENODEV);
}

TEST_CASE("rtnl: a route's preferred source is set, read back and used by the kernel", "[rtnl]") {
    if (!netns_available()) return;
    Netns a("wgrp");
    add_dummy(a, "d0");
    // Two fleet-style addresses; the kernel would pick either for a prefix outside both.
    must(a, "ip link set d0 up && ip -6 addr add fd00:1::5/56 dev d0 nodad && ip -6 addr add fd00:2::5/56 dev d0 nodad");
    InNetns in(a);
    Rtnl rtnl;
    REQUIRE(rtnl.status());
    for (const char* src : {"fd00:1::5", "fd00:2::5"}) {
        Route r{P("2001:db8:7::/48"), "d0", wgf::model::IpAddr::parse(src)};
        REQUIRE(rtnl.add_route(r));
        auto got = rtnl.read_routes({"d0"});
        REQUIRE(got);
        CHECK(*got == std::set<Route>{r});
        CHECK(contains(must(a, "ip -6 route get 2001:db8:7::1"), std::string("src ") + src));
        REQUIRE(rtnl.del_route(r));
    }
    // A source of the other family is refused before the kernel is asked.
    auto mixed = rtnl.add_route({P("2001:db8:7::/48"), "d0", wgf::model::IpAddr::parse("10.0.0.1")});
    REQUIRE_FALSE(mixed);
    CHECK(mixed.error().code == EINVAL);
    auto none = rtnl.read_routes({"d0"});
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("rtnl: a wireguard-go device takes 40 IPv6 addresses through the userspace pacing and stays alive", "[rtnl]") {
    if (!netns_available()) return;
    Netns ns("wgrg");
    WireguardGo wg(ns, unique_name("wgr"));
    InNetns in(ns);
    Rtnl rtnl;
    REQUIRE(rtnl.status());

    auto link = rtnl.read_link(wg.ifname());
    REQUIRE(link);
    REQUIRE(link->has_value());
    CHECK((*link)->kind == "tun");
    REQUIRE(rtnl.set_up(wg.ifname(), true));

    std::vector<Prefix> forty;
    for (int i = 1; i <= 40; ++i) forty.push_back(P(fmt::format("fd00:40::{:x}/64", i).c_str()));
    int checks = 0, pauses = 0;
    const std::string ifname = wg.ifname();
    UserspacePacing links(rtnl,
                          UserspaceProbe{.is_userspace = [&](const std::string& n) { return n == ifname; },
                                         .alive =
                                             [&](const std::string&) {
                                                 ++checks;
                                                 return wg.alive();
                                             }},
                          PacingOptions{.chunk = 16, .pause = [&] {
                                            ++pauses;
                                            sleep_ms(1);
                                        }});
    for (const auto& p : forty) {
        auto s = links.add_address(ifname, p);
        INFO((s ? "" : s.error().message));
        REQUIRE(s);
    }
    CHECK(checks == 40);
    CHECK(pauses == 2);

    auto got = rtnl.read_addresses(wg.ifname());
    REQUIRE(got);
    CHECK(got->prefixes() == forty);
    // wireguard-go reads the address notifications on its own netlink socket; give it the chance
    // to fail on them (it exits on ENOBUFS) before checking that it did not.
    sleep_ms(500);
    CHECK(wg.alive());
    CHECK(must(ns, "ip link show " + wg.ifname()).find("state") != std::string::npos);
}

TEST_CASE("rtnl: an exit node's policy rules and its table's default routes - added, read back, foreign ones untouched, removed",
          "[rtnl][exit]") {
    if (!netns_available()) return;
    Netns a("wgrx");
    add_dummy(a, "d0");
    must(a, "ip link set d0 up && ip addr add 10.5.0.1/24 dev d0");
    InNetns in(a);
    Rtnl rtnl;
    REQUIRE(rtnl.status());
    using wgf::model::PolicyRule;
    namespace m = wgf::model;
    // Foreign: the same shapes without our protocol, and ours at a priority wg-fleet does not use.
    must(a, "ip rule add priority 30567 not fwmark 0x7767 table 30567");
    must(a, fmt::format("ip -6 rule add priority 100 table main suppress_prefixlength 0 proto {}", kRouteProtocol));
    const std::string before4 = must(a, "ip -4 rule"), before6 = must(a, "ip -6 rule");
    auto none = rtnl.read_rules();
    REQUIRE(none);
    CHECK(none->empty());

    std::set<PolicyRule> ours;
    for (uint8_t family : {uint8_t{4}, uint8_t{6}}) {
        ours.insert(PolicyRule{.family = family, .priority = m::kExitSuppressPriority, .table = m::kMainTable, .suppress_prefixlength = 0});
        ours.insert(
            PolicyRule{.family = family, .priority = m::kExitMarkPriority, .table = m::kExitTable, .fwmark = m::kExitMark, .invert = true});
    }
    for (const auto& r : ours) {
        auto s = rtnl.add_rule(r);
        INFO(r.family << " " << r.priority << ": " << (s ? "" : s.error().message));
        REQUIRE(s);
    }
    auto got = rtnl.read_rules();
    REQUIRE(got);
    CHECK(*got == ours);
    // iproute2 reads them as wg-quick's, with our protocol.
    const std::string shown = must(a, "ip -4 rule; ip -6 rule");
    auto count = [&](const std::string& needle) {
        size_t n = 0;
        for (size_t at = shown.find(needle); at != std::string::npos; at = shown.find(needle, at + 1)) ++n;
        return n;
    };
    CHECK(count(fmt::format("30566:\tfrom all lookup main suppress_prefixlength 0 proto {}", kRouteProtocol)) == 2);
    CHECK(count(fmt::format("30567:\tnot from all fwmark 0x7767 lookup 30567 proto {}", kRouteProtocol)) == 2);
    auto again = rtnl.add_rule(*ours.begin());
    REQUIRE_FALSE(again);
    CHECK(again.error().code == EEXIST);

    // The default routes of the exit table read back with their table; main's are apart.
    const Route v4{.dst = P("0.0.0.0/0"), .dev = "d0", .table = m::kExitTable};
    const Route v6{.dst = P("::/0"), .dev = "d0", .table = m::kExitTable};
    REQUIRE(rtnl.add_route(v4));
    REQUIRE(rtnl.add_route(v6));
    auto routes = rtnl.read_routes({"d0"});
    REQUIRE(routes);
    CHECK(*routes == std::set<Route>{v4, v6});
    CHECK(contains(must(a, "ip -4 route show table 30567"), fmt::format("default dev d0 proto {}", kRouteProtocol)));
    CHECK(must(a, "ip -4 route show table main default").empty());

    for (const auto& r : ours) REQUIRE(rtnl.del_rule(r));
    REQUIRE(rtnl.del_route(v4));
    REQUIRE(rtnl.del_route(v6));
    auto gone = rtnl.read_rules();
    REQUIRE(gone);
    CHECK(gone->empty());
    // What was there before, foreign rules included, is as it was.
    CHECK(must(a, "ip -4 rule") == before4);
    CHECK(must(a, "ip -6 rule") == before6);
    // A rule that is not ours (no protocol 87) is not deleted by a request for ours.
    auto foreign = rtnl.del_rule(
        PolicyRule{.family = 4, .priority = m::kExitMarkPriority, .table = m::kExitTable, .fwmark = m::kExitMark, .invert = true});
    REQUIRE_FALSE(foreign);
    CHECK(contains(must(a, "ip -4 rule"), "not from all fwmark 0x7767 lookup 30567"));
}
