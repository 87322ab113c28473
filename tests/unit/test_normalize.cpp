// model/normalize: the prefix sets a HostState carries are canonical by construction, so a
// desired and a live state compare with ==.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../linux_unit/values.hpp"
#include "model/host_state.hpp"
#include "model/normalize.hpp"

using namespace wgf::model;
using wgf::test::strs;

namespace {

Prefix P(const char* s) { return *Prefix::parse(s); }

}  // namespace

TEST_CASE("PrefixSet: built from any list, it holds each network once, host bits cleared, in order", "[normalize]") {
    PrefixSet s({P("fd00:1::5/64"), P("10.0.0.7/16"), P("10.0.0.0/16"), P("10.1.0.0/24"), P("fd00:1::/64")});
    CHECK(strs(s) == std::vector<std::string>{"10.0.0.0/16", "10.1.0.0/24", "fd00:1::/64"});
    // The same allowed IPs in another spelling and order are the same set.
    CHECK(s == PrefixSet{P("fd00:1::9/64"), P("10.1.0.0/24"), P("10.0.255.255/16")});
    CHECK(s != PrefixSet{P("10.0.0.0/16"), P("fd00:1::/64")});
}

TEST_CASE("PrefixSet: insert and erase keep the invariant and say whether anything changed", "[normalize]") {
    PrefixSet s;
    CHECK(s.insert(P("10.2.0.0/24")));
    CHECK(s.insert(P("10.1.0.9/24")));        // before the last: placed in order
    CHECK_FALSE(s.insert(P("10.1.0.1/24")));  // the same network
    CHECK(s.insert(P("fd00::/8")));
    CHECK(strs(s) == std::vector<std::string>{"10.1.0.0/24", "10.2.0.0/24", "fd00::/8"});
    CHECK(s.contains(P("10.2.0.77/24")));
    CHECK(s.erase(P("10.2.0.1/24")));
    CHECK_FALSE(s.erase(P("10.2.0.0/24")));
    s.insert(std::vector<Prefix>{P("fd00::/8"), P("10.0.0.0/8"), P("10.3.0.3/24"), P("10.0.0.1/8")});
    CHECK(strs(s) == std::vector<std::string>{"10.0.0.0/8", "10.1.0.0/24", "10.3.0.0/24", "fd00::/8"});
    CHECK(s.size() == 4);
}

TEST_CASE("AddressSet: an interface address keeps its host bits, sorted and each once", "[normalize]") {
    AddressSet a({P("fd00:1::5/64"), P("10.0.0.7/16"), P("fd00:1::5/64"), P("fd00:1::5/80")});
    CHECK(strs(a) == std::vector<std::string>{"10.0.0.7/16", "fd00:1::5/64", "fd00:1::5/80"});
    CHECK(a.insert(P("10.0.0.8/16")));
    CHECK_FALSE(a.contains(P("10.0.0.0/16")));
}

TEST_CASE("HostState: a peer's allowed IPs given in any order and spelling compare equal", "[normalize]") {
    WgPeer a{.allowed_ips = {P("10.1.0.5/24"), P("fd00::/64"), P("10.0.0.0/24")}};
    WgPeer b{.allowed_ips = PrefixSet(std::vector<Prefix>{P("fd00::1/64"), P("10.0.0.0/24"), P("10.1.0.0/24"), P("10.0.0.0/24")})};
    CHECK(a == b);
}
