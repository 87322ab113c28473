#include <catch2/catch.hpp>

#include "linux/sysctl.hpp"
#include "support.hpp"

using namespace wgf::test;

TEST_CASE("sysctl: forwarding is written in the namespace the thread is in, not the host's", "[netns][sysctl]") {
    if (!netns_available()) return;
    wgf::linux_::Sysctl host_view;
    auto before = host_view.read("net/ipv6/conf/all/forwarding");
    REQUIRE(before);
    Netns ns;
    {
        InNetns in(ns);
        wgf::linux_::Sysctl s;
        auto v = s.read("net/ipv6/conf/all/forwarding");
        REQUIRE(v);
        CHECK(*v == "0");  // a new namespace starts with forwarding off
        REQUIRE(s.write("net/ipv6/conf/all/forwarding", "1"));
        REQUIRE(s.write("net/ipv4/ip_forward", "1"));
        CHECK(*s.read("net/ipv6/conf/all/forwarding") == "1");
        CHECK(*s.read("net/ipv4/ip_forward") == "1");
    }
    CHECK(ns.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").out == "1\n");
    auto after = host_view.read("net/ipv6/conf/all/forwarding");
    REQUIRE(after);
    CHECK(*after == *before);
}

TEST_CASE("sysctl: list names all, default and the interfaces of the namespace the thread is in", "[netns][sysctl]") {
    if (!netns_available()) return;
    Netns ns;
    // A veth pair: every kernel has it (not every one has dummy).
    const std::string a = unique_name("sla"), b = unique_name("slb");
    REQUIRE(ns.sh("ip link add " + a + " type veth peer name " + b).status == 0);
    InNetns in(ns);
    wgf::linux_::Sysctl s;
    auto names = s.list("net/ipv6/conf");
    REQUIRE(names);
    CHECK(*names == std::vector<std::string>{"all", "default", "lo", a, b});
    auto none = s.list("net/ipv6/no-such-dir");
    REQUIRE(none);
    CHECK(none->empty());
    CHECK_FALSE(s.list("../etc"));
}
