// model/net: IP addresses, prefixes, endpoints, keys, interface names and durations.
// Expected texts follow RFC 5952 (IPv6 text), RFC 7748 (X25519) and `wg pubkey` output; none is
// computed with the code under test.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../linux_unit/values.hpp"
#include "model/net.hpp"

using namespace wgf::model;
using wgf::test::ip;
using namespace std::string_literals;

namespace {

std::string canon(std::string_view text) {
    auto a = IpAddr::parse(text);
    REQUIRE(a.has_value());
    return a->str();
}

std::string canon_prefix(std::string_view text) {
    auto p = Prefix::parse(text);
    REQUIRE(p.has_value());
    return p->str();
}

Prefix pfx(std::string_view text) {
    auto p = Prefix::parse(text);
    REQUIRE(p.has_value());
    return *p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// IpAddr

TEST_CASE("IpAddr parses IPv4 into the first four bytes", "[net][ip]") {
    auto a = IpAddr::parse("192.0.2.1");
    REQUIRE(a);
    CHECK(a->is_v4());
    CHECK_FALSE(a->is_v6());
    CHECK(a->family == 4);
    CHECK(a->bits() == 32);
    CHECK(a->bytes[0] == 192);
    CHECK(a->bytes[1] == 0);
    CHECK(a->bytes[2] == 2);
    CHECK(a->bytes[3] == 1);
    for (int i = 4; i < 16; ++i) CHECK(a->bytes[i] == 0);
    CHECK(a->v4_value() == 0xC0000201u);
    CHECK(a->str() == "192.0.2.1");
}

TEST_CASE("IpAddr::v4 builds from a host-order value", "[net][ip]") {
    CHECK(IpAddr::v4(0x0A320001u).str() == "10.50.0.1");
    CHECK(IpAddr::v4(0xFFFFFFFFu).str() == "255.255.255.255");
    CHECK(IpAddr::v4(0).str() == "0.0.0.0");
    CHECK(IpAddr::v4(0x0A320001u) == ip("10.50.0.1"));
}

TEST_CASE("IpAddr parses IPv6 into sixteen bytes", "[net][ip]") {
    auto a = IpAddr::parse("fd51:19c1:3b:f700::1");
    REQUIRE(a);
    CHECK(a->is_v6());
    CHECK(a->bits() == 128);
    const uint8_t want[16] = {0xfd, 0x51, 0x19, 0xc1, 0x00, 0x3b, 0xf7, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 16; ++i) CHECK(a->bytes[i] == want[i]);
}

TEST_CASE("IPv6 formats as RFC 5952 canonical text", "[net][ip][rfc5952]") {
    // 4.2.3: of two equal longest runs of zeros, the first is compressed.
    CHECK(canon("2001:db8:0:0:1:0:0:1") == "2001:db8::1:0:0:1");
    // 4.2.3: the longest run is compressed.
    CHECK(canon("1:0:0:2:0:0:0:3") == "1:0:0:2::3");
    CHECK(canon("2001:db8:0:0:0:0:2:1") == "2001:db8::2:1");
    // 4.2.2: a lone zero group is not compressed.
    CHECK(canon("2001:db8:0:1:1:1:1:1") == "2001:db8:0:1:1:1:1:1");
    CHECK(canon("2001:db8::1:1:1:1:1") == "2001:db8:0:1:1:1:1:1");
    // 4.1: leading zeros are dropped.
    CHECK(canon("2001:0db8:0000:0000:0000:0000:0000:0001") == "2001:db8::1");
    CHECK(canon("fd51:19c1:003b:f700::0001") == "fd51:19c1:3b:f700::1");
    // 4.3: lower case.
    CHECK(canon("2001:DB8::ABCD:EF") == "2001:db8::abcd:ef");
    CHECK(canon("FD00::") == "fd00::");
    // Edge runs.
    CHECK(canon("0:0:0:0:0:0:0:0") == "::");
    CHECK(canon("0:0:0:0:0:0:0:1") == "::1");
    CHECK(canon("fd00:0:0:0:0:0:0:0") == "fd00::");
    CHECK(canon("1:2:3:4:5:6:7:8") == "1:2:3:4:5:6:7:8");
    // 5: IPv4-mapped addresses keep the dotted quad.
    CHECK(canon("::ffff:192.0.2.1") == "::ffff:192.0.2.1");
    CHECK(canon("::FFFF:C000:0201") == "::ffff:192.0.2.1");
}

TEST_CASE("IPv6 with 96 leading zero bits is not shown as a dotted quad", "[net][ip][rfc5952]") {
    // RFC 5952 section 5 allows mixed notation only for addresses known to embed IPv4
    // (IPv4-mapped, ISATAP, IPv4-translatable); "::1:2" is plain hexadecimal in section 4.
    CHECK(canon("::1:2") == "::1:2");
    CHECK(canon("::a:b") == "::a:b");
    CHECK(canon("0:0:0:0:0:0:1:0") == "::1:0");
}

TEST_CASE("IPv6 text round-trips through parse and str", "[net][ip]") {
    for (const char* t : {"::", "::1", "fd00::", "fd51:19c1::", "fd51:19c1:3b:f700::1", "fd51:19c1:c1:aa00:6987:50a0:9b93:4337",
                          "2001:db8::1:0:0:1", "2001:db8:0:1:1:1:1:1", "fe80::1", "ff02::2"}) {
        INFO(t);
        CHECK(canon(t) == t);
    }
}

TEST_CASE("IpAddr rejects malformed text", "[net][ip]") {
    const char* bad[] = {
        "",
        "1.2.3",
        "01.2.3.4",
        "1.02.3.4",
        "1.2.3.256",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.-4",
        "0x1.2.3.4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4/32",
        "1..2.3",
        "a.b.c.d",
        "1.2.3.4:80",
        ":",
        ":::",
        "fd00::1::2",
        "fd00::g",
        "12345::",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "fe80::1%eth0",
        "[fd00::1]",
        "fd00:: ",
        "localhost",
        "::ffff:1.2.3",
    };
    for (const char* t : bad) {
        INFO("'" << t << "'");
        CHECK_FALSE(IpAddr::parse(t).has_value());
    }
}

TEST_CASE("IpAddr rejects text with an embedded NUL", "[net][ip]") {
    // YAML allows "\0" in double-quoted scalars; the value must not be truncated at the NUL.
    CHECK_FALSE(IpAddr::parse(std::string_view("1.2.3.4\0junk", 12)).has_value());
    CHECK_FALSE(IpAddr::parse(std::string_view("fd00::1\0", 8)).has_value());
}

TEST_CASE("IpAddr ordering and equality are by value", "[net][ip]") {
    CHECK(ip("fd00:0::1") == ip("fd00::1"));
    CHECK(ip("10.0.0.1") < ip("10.0.0.2"));
    CHECK(ip("10.0.0.1") != ip("::ffff:10.0.0.1"));  // different families
    CHECK(fmt::format("{}", ip("FD00::0001")) == "fd00::1");
}

// ---------------------------------------------------------------------------------------------
// Prefix

TEST_CASE("Prefix parses ADDRESS/LENGTH and formats canonically", "[net][prefix]") {
    auto p = Prefix::parse("fd00:a0a8:34d:2a00::/64");
    REQUIRE(p);
    CHECK(p->len == 64);
    CHECK(p->addr == ip("fd00:a0a8:34d:2a00::"));
    CHECK(p->str() == "fd00:a0a8:34d:2a00::/64");
    CHECK(canon_prefix("FD00:0000::/8") == "fd00::/8");
    CHECK(canon_prefix("10.20.0.0/16") == "10.20.0.0/16");
    CHECK(canon_prefix("0.0.0.0/0") == "0.0.0.0/0");
    CHECK(canon_prefix("::/0") == "::/0");
    CHECK(canon_prefix("10.0.0.1/32") == "10.0.0.1/32");
    CHECK(canon_prefix("fd00::1/128") == "fd00::1/128");
    CHECK(fmt::format("{}", pfx("10.1.0.0/16")) == "10.1.0.0/16");
}

TEST_CASE("Prefix keeps host bits until masked", "[net][prefix]") {
    Prefix a = pfx("fd51:19c1:3b:f700::1/40");
    CHECK(a.str() == "fd51:19c1:3b:f700::1/40");
    CHECK_FALSE(a.is_network());
    CHECK(a.masked().str() == "fd51:19c1::/40");
    CHECK(a.masked().is_network());

    CHECK(pfx("fd51:19c1:3b:f700:6987:50a0:9b93:4337/96").masked().str() == "fd51:19c1:3b:f700:6987:50a0::/96");
    CHECK(pfx("fd51:19c1:3b:f700:6987:50a0:9b93:4337/56").masked().str() == "fd51:19c1:3b:f700::/56");
    // Lengths that split a byte.
    CHECK(pfx("172.31.255.255/12").masked().str() == "172.16.0.0/12");
    CHECK(pfx("10.1.2.3/13").masked().str() == "10.0.0.0/13");
    CHECK(pfx("192.168.1.255/25").masked().str() == "192.168.1.128/25");
    CHECK(pfx("2001:db8:ffff::1/36").masked().str() == "2001:db8:f000::/36");
    CHECK(pfx("fd00::ffff/127").masked().str() == "fd00::fffe/127");
    // Extremes.
    CHECK(pfx("255.255.255.255/0").masked().str() == "0.0.0.0/0");
    CHECK(pfx("ffff::1/0").masked().str() == "::/0");
    CHECK(pfx("10.9.8.7/32").masked().str() == "10.9.8.7/32");
    CHECK(pfx("fd00::1/128").masked().str() == "fd00::1/128");
    CHECK(pfx("10.0.0.0/8").is_network());
}

TEST_CASE("Prefix::host is a full-length prefix", "[net][prefix]") {
    CHECK(Prefix::host(ip("10.1.2.3")).str() == "10.1.2.3/32");
    CHECK(Prefix::host(ip("fd00::5")).str() == "fd00::5/128");
}

TEST_CASE("Prefix rejects malformed text and says why", "[net][prefix]") {
    const char* bad[] = {"fd00::",      "10.0.0.0",    "10.0.0.0/",   "/8",           "10.0.0.0/33",        "fd00::/129",
                         "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/ 8",  "10.0.0.0/8 ",        "10.0.0.0/8/8",
                         "10.0.0/8",    "01.0.0.0/8",  "fd00::g/64",  "10.0.0.0/1e1", "10.0.0.0/4294967304"};
    for (const char* t : bad) {
        INFO("'" << t << "'");
        CHECK_FALSE(Prefix::parse(t).has_value());
    }
    std::string why;
    CHECK_FALSE(Prefix::parse("10.0.0.0/33", &why));
    CHECK(why.find("0..32") != std::string::npos);
    why.clear();
    CHECK_FALSE(Prefix::parse("fd00::/129", &why));
    CHECK(why.find("0..128") != std::string::npos);
    why.clear();
    CHECK_FALSE(Prefix::parse("fd00::", &why));
    CHECK_FALSE(why.empty());
}

TEST_CASE("Prefix::contains", "[net][prefix]") {
    CHECK(pfx("fd51:19c1::/40").contains(ip("fd51:19c1:3b:f700::1")));
    CHECK(pfx("fd51:19c1::/40").contains(ip("fd51:19c1:ff:ffff:ffff:ffff:ffff:ffff")));
    CHECK_FALSE(pfx("fd51:19c1::/40").contains(ip("fd51:19c2::1")));
    CHECK(pfx("10.50.0.0/24").contains(ip("10.50.0.255")));
    CHECK_FALSE(pfx("10.50.0.0/24").contains(ip("10.50.1.0")));
    CHECK(pfx("0.0.0.0/0").contains(ip("203.0.113.9")));
    CHECK(pfx("10.1.2.3/32").contains(ip("10.1.2.3")));
    CHECK_FALSE(pfx("10.1.2.3/32").contains(ip("10.1.2.4")));
    // Host bits in the prefix do not matter.
    CHECK(pfx("10.50.0.77/24").contains(ip("10.50.0.1")));
    // Families never mix.
    CHECK_FALSE(pfx("::/0").contains(ip("10.0.0.1")));
    CHECK_FALSE(pfx("0.0.0.0/0").contains(ip("::1")));
    CHECK_FALSE(pfx("::ffff:0:0/96").contains(ip("10.0.0.1")));
}

TEST_CASE("Prefix::contains: an address that differs in bit b lies in a prefix of length len exactly when b >= len", "[net][prefix]") {
    for (const char* base : {"fd51:19c1:3b:f700:6987:50a0:9b93:4337", "10.50.7.77"}) {
        const IpAddr a = ip(base);
        for (unsigned len = 0; len <= a.bits(); ++len) {
            const Prefix p{a, static_cast<uint8_t>(len)};
            CHECK(p.contains(a));
            for (unsigned b = 0; b < a.bits(); ++b) {
                IpAddr other = a;
                other.bytes[b / 8] ^= static_cast<uint8_t>(0x80 >> (b % 8));
                INFO(p.str() << " contains " << other.str());
                CHECK(p.contains(other) == (b >= len));
                CHECK(p.contains(other) == (Prefix{other, p.len}.masked().addr == p.masked().addr));
            }
        }
    }
}

TEST_CASE("Prefix::overlaps is symmetric and family-aware", "[net][prefix]") {
    auto both = [](const char* a, const char* b) {
        bool x = pfx(a).overlaps(pfx(b)), y = pfx(b).overlaps(pfx(a));
        INFO(a << " vs " << b);
        CHECK(x == y);
        return x;
    };
    CHECK(both("10.0.0.0/8", "10.1.0.0/16"));
    CHECK(both("10.1.0.0/16", "10.1.0.0/16"));
    CHECK_FALSE(both("10.0.0.0/16", "10.1.0.0/16"));
    CHECK(both("fd00:a0a8:34d:2a00::/64", "fd00:a0a8:34d::/48"));
    CHECK_FALSE(both("fd00:a0a8:34d:2a00::/64", "fd00:a0a8:34d:2000::/64"));
    CHECK(both("::/0", "fd00::/8"));
    CHECK(both("fd51:19c1::/40", "fd51:19c1:3b:f700::/56"));
    CHECK_FALSE(both("fd51:19c1::/40", "fd51:19c2::/40"));
    CHECK_FALSE(both("0.0.0.0/0", "::/0"));
    CHECK(both("192.168.1.128/25", "192.168.1.200/32"));
    CHECK_FALSE(both("192.168.1.0/25", "192.168.1.200/32"));
}

// ---------------------------------------------------------------------------------------------
// Endpoint

TEST_CASE("Endpoint parses every accepted form", "[net][endpoint]") {
    struct Case {
        const char* text;
        const char* host;
        uint16_t port;
    } cases[] = {
        {"vpn.example.com", "vpn.example.com", 0},
        {"vpn.example.com:51821", "vpn.example.com", 51821},
        {"vpn1", "vpn1", 0},
        {"1.2.3.4", "1.2.3.4", 0},
        {"1.2.3.4:51820", "1.2.3.4", 51820},
        {"[fd00::1]:51820", "fd00::1", 51820},
        {"[2001:db8::1]:1", "2001:db8::1", 1},
        {"[fd00::1]", "fd00::1", 0},
        {"fd00::1", "fd00::1", 0},
        {"2001:db8::1:0:0:1", "2001:db8::1:0:0:1", 0},
        {"host:65535", "host", 65535},
        {"host:1", "host", 1},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto e = Endpoint::parse(c.text);
        REQUIRE(e);
        CHECK(e->host == c.host);
        CHECK(e->port == c.port);
    }
}

TEST_CASE("Endpoint rejects bad ports, empty hosts and malformed brackets", "[net][endpoint]") {
    const char* bad[] = {
        "host:0",
        "host:65536",
        "host:99999",
        "vpn.example.com:99999",
        "host:",
        "host:-1",
        "host:+80",
        "host:80a",
        "host: 80",
        "1.2.3.4:0",
        "[fd00::1]:0",
        "[fd00::1]:65536",
        "[fd00::1]:",
        "[fd00::1]x",
        "[fd00::1",
        "[1.2.3.4]:80",
        "[vpn.example.com]:80",
        "[]:80",
        ":51820",
        "",
        "fd00::1:51820",
        "-bad.example.com",
        "bad-.example.com",
        "exa mple.com",
        "a..b",
        ".",
        "host:80:90",
    };
    for (const char* t : bad) {
        INFO("'" << t << "'");
        CHECK_FALSE(Endpoint::parse(t).has_value());
    }
}

TEST_CASE("Endpoint errors say what is allowed", "[net][endpoint]") {
    std::string why;
    CHECK_FALSE(Endpoint::parse("vpn.example.com:99999", &why));
    CHECK(why == "port must be 1..65535");
    why.clear();
    CHECK_FALSE(Endpoint::parse("host:0", &why));
    CHECK(why == "port must be 1..65535");
    why.clear();
    CHECK_FALSE(Endpoint::parse(":51820", &why));
    CHECK_FALSE(why.empty());
}

TEST_CASE("Endpoint formats with brackets around IPv6 and round-trips", "[net][endpoint]") {
    CHECK(Endpoint{"fd00::1", 51820}.str() == "[fd00::1]:51820");
    CHECK(Endpoint{"vpn.example.com", 51821}.str() == "vpn.example.com:51821");
    CHECK(Endpoint{"1.2.3.4", 0}.str() == "1.2.3.4");
    CHECK(fmt::format("{}", Endpoint{"1.2.3.4", 443}) == "1.2.3.4:443");
    for (const char* t : {"vpn.example.com:51821", "[fd00::1]:51820", "1.2.3.4:1", "vpn.example.com"}) {
        INFO(t);
        auto e = Endpoint::parse(t);
        REQUIRE(e);
        CHECK(e->str() == t);
        CHECK(Endpoint::parse(e->str()) == e);
    }
    auto bare = Endpoint::parse("fd00::1");
    REQUIRE(bare);
    CHECK(Endpoint::parse(bare->str()) == bare);
}

TEST_CASE("Endpoint stores an IP literal host in canonical form", "[net][endpoint]") {
    // The header promises canonical text. The kernel reports endpoints as canonical IPs and
    // apply's resolver leaves IP literals as written, so "[FD00:0::1]" must become "fd00::1" here
    // or the desired and live endpoints never compare equal.
    auto a = Endpoint::parse("[FD00:0::1]:51820");
    REQUIRE(a);
    CHECK(a->host == "fd00::1");
    CHECK(a->str() == "[fd00::1]:51820");
    auto b = Endpoint::parse("2001:DB8:0:0::1");
    REQUIRE(b);
    CHECK(b->host == "2001:db8::1");
    auto c = Endpoint::parse("[2001:db8:0:0:1:0:0:1]:1");
    REQUIRE(c);
    CHECK(c->host == "2001:db8::1:0:0:1");
    // DNS names are kept as written.
    auto d = Endpoint::parse("VPN.Example.com:1");
    REQUIRE(d);
    CHECK(d->host == "VPN.Example.com");
}

TEST_CASE("Endpoint::with_default_port fills only a missing port", "[net][endpoint]") {
    CHECK(Endpoint{"vpn", 0}.with_default_port(51820) == Endpoint{"vpn", 51820});
    CHECK(Endpoint{"vpn", 51821}.with_default_port(51820) == Endpoint{"vpn", 51821});
}

// ---------------------------------------------------------------------------------------------
// Keys

namespace {
// From `wg genkey | tee priv | wg pubkey`, run while writing this test.
constexpr const char* kPriv = "GPjal1mQ9yMdMKIj9XWzSnc1tvL9QyQerQ0zC9UHInM=";
constexpr const char* kPub = "cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=";
// RFC 7748 section 6.1 (Alice), base64 of the hex given there; `wg pubkey` agrees.
constexpr const char* kRfcPriv = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
constexpr const char* kRfcPub = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
const std::string kZeros42(42, 'A');
}  // namespace

TEST_CASE("Key decodes 44-character base64 of 32 bytes", "[net][key]") {
    auto k = Key::from_base64(kRfcPub);
    REQUIRE(k);
    // 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
    const uint8_t want[32] = {0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
                              0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};
    for (int i = 0; i < 32; ++i) CHECK(k->bytes[i] == want[i]);
    CHECK(k->base64() == kRfcPub);
    CHECK(fmt::format("{}", *k) == kRfcPub);
    CHECK(k->short_str().rfind("hSDwCYkw", 0) == 0);
}

TEST_CASE("Key round-trips and orders by bytes", "[net][key]") {
    for (const char* t : {kPub, kPriv, kRfcPriv, "WUTtRe8NvkAPhLOehJ4iEPbDU0RMKcvsJVGGsGNVMX8="}) {
        auto k = Key::from_base64(t);
        REQUIRE(k);
        CHECK(k->base64() == t);
    }
    auto zero = Key::from_base64(kZeros42 + "A=");
    auto one = Key::from_base64(kZeros42 + "E=");  // the last byte is 0x01
    REQUIRE(zero);
    REQUIRE(one);
    CHECK(one->bytes[31] == 1);
    for (int i = 0; i < 31; ++i) CHECK(one->bytes[i] == 0);
    CHECK(*zero < *one);
}

TEST_CASE("Key orders and compares as memcmp of its bytes, whichever byte differs", "[net][key]") {
    // A difference in each byte, high bit and low bit, with equal or different bytes around it:
    // the order of maps keyed by Key (and so of every peer list) is that of the bytes.
    auto sign = [](int v) { return (v > 0) - (v < 0); };
    auto order = [](const Key& a, const Key& b) { return a < b ? -1 : b < a ? 1 : 0; };
    std::vector<Key> keys;
    for (size_t i = 0; i < 32; ++i)
        for (uint8_t v : {uint8_t{0x01}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}}) {
            Key k;
            k.bytes[i] = v;
            keys.push_back(k);
            Key around;
            around.bytes.fill(0x80);
            around.bytes[i] = v;
            keys.push_back(around);
        }
    keys.push_back(Key{});
    for (const auto& a : keys)
        for (const auto& b : keys) {
            int want = sign(std::memcmp(a.bytes.data(), b.bytes.data(), 32));
            CHECK(order(a, b) == want);
            CHECK((a == b) == (want == 0));
            CHECK(((a <=> b) < 0) == (want < 0));
            CHECK(((a <=> b) > 0) == (want > 0));
        }
}

TEST_CASE("Key rejects wrong lengths, bad characters and non-canonical encodings", "[net][key]") {
    std::string good = kPub;
    std::vector<std::string> bad = {
        "",
        good.substr(0, 43),         // 43 characters
        good + "A",                 // 45 characters
        good.substr(0, 43) + "A",   // 44 characters, no '=' at the end
        good.substr(0, 42) + "==",  // 44 characters but only 31 bytes
        good.substr(0, 10) + "*" + good.substr(11),
        good.substr(0, 10) + " " + good.substr(11),
        good.substr(0, 10) + "\xe2" + good.substr(11),  // not ASCII (libsodium 1.0.18 decodes it as a digit)
        kZeros42 + "B=",                                // low bits of the last character set: non-canonical
        kZeros42 + "C=",
        kZeros42 + "D=",
        "ZwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo",     // 43 characters without padding
        "ZwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo==",   // 45 characters
        "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n",  // trailing newline
        "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC-=",    // URL-safe alphabet
        "YWJj",                                            // base64 of 3 bytes
    };
    for (const auto& t : bad) {
        INFO("'" << t << "'");
        CHECK_FALSE(Key::from_base64(t).has_value());
    }
    std::string why;
    CHECK_FALSE(Key::from_base64("short", &why));
    CHECK(why.find("44") != std::string::npos);
}

TEST_CASE("Key and SecretKey accept exactly the same base64, each with its own decoder", "[net][key][secret]") {
    // Key decodes by table (public keys, fast), SecretKey with libsodium (constant-time): every
    // byte value at every position of a few keys, so that neither accepts what the other refuses.
    int accepted = 0;
    for (std::string good : {std::string(kPub), std::string(kRfcPriv), kZeros42 + "A=", std::string(44, '/'), std::string(43, '+') + "="}) {
        for (size_t i = 0; i < good.size(); ++i)
            for (int c = 0; c < 256; ++c) {
                std::string t = good;
                t[i] = static_cast<char>(c);
                auto k = Key::from_base64(t);
                auto s = SecretKey::from_base64(t);
                INFO("'" << t << "'");
                REQUIRE(k.has_value() == s.has_value());
                if (k) {
                    CHECK(k->bytes == s->raw());
                    ++accepted;
                }
            }
    }
    CHECK(accepted > 1000);
}

TEST_CASE("SecretKey derives the X25519 public key", "[net][key][secret]") {
    auto rfc = SecretKey::from_base64(kRfcPriv);
    REQUIRE(rfc);
    CHECK(rfc->public_key().base64() == kRfcPub);
    auto mine = SecretKey::from_base64(kPriv);
    REQUIRE(mine);
    CHECK(mine->public_key().base64() == kPub);
    CHECK(mine->base64_for_storage() == kPriv);
    CHECK_FALSE(SecretKey::from_base64(kZeros42 + "B=").has_value());
    CHECK_FALSE(SecretKey::from_base64("not a key").has_value());
}

TEST_CASE("SecretKey reads a key file's content: trailing newlines, CRs and spaces only", "[net][key][secret]") {
    const std::string priv = kPriv;
    for (const char* tail : {"", "\n", "\r\n", " \n\n"}) {
        auto k = SecretKey::from_key_file(priv + tail);
        REQUIRE(k);
        CHECK(k->public_key().base64() == kPub);
    }
    CHECK_FALSE(SecretKey::from_key_file(" " + priv).has_value());
    CHECK_FALSE(SecretKey::from_key_file(priv + "\nmore").has_value());
    CHECK_FALSE(SecretKey::from_key_file("").has_value());
}

TEST_CASE("SecretKey never formats its bytes", "[net][key][secret]") {
    auto k = SecretKey::from_base64(kPriv);
    REQUIRE(k);
    CHECK(fmt::format("{}", *k) == "(hidden)");
    CHECK(fmt::format("key={}!", *k) == "key=(hidden)!");
    CHECK(fmt::format("{}", SecretKey::generate()) == "(hidden)");
}

TEST_CASE("SecretKey::generate gives fresh clamped keys", "[net][key][secret]") {
    std::set<std::string> seen;
    for (int i = 0; i < 16; ++i) {
        SecretKey s = SecretKey::generate();
        const auto& b = s.raw();
        // Curve25519 clamping, as `wg genkey` stores it.
        CHECK((b[0] & 7) == 0);
        CHECK((b[31] & 0x80) == 0);
        CHECK((b[31] & 0x40) == 0x40);
        std::string text = s.base64_for_storage();
        CHECK(text.size() == 44);
        CHECK(seen.insert(text).second);
        // The stored text loads back to the same key with the same public key.
        auto back = SecretKey::from_base64(text);
        REQUIRE(back);
        CHECK(*back == s);
        CHECK(back->public_key() == s.public_key());
        CHECK(s.public_key().base64() != text);
    }
}

TEST_CASE("SecretKey equality compares the key", "[net][key][secret]") {
    auto a = SecretKey::from_base64(kPriv), b = SecretKey::from_base64(kPriv), c = SecretKey::from_base64(kRfcPriv);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(*a == *b);
    CHECK_FALSE(*a == *c);
    SecretKey copy = *a;
    CHECK(copy == *a);
}

// ---------------------------------------------------------------------------------------------
// Interface names

TEST_CASE("valid_ifname follows the kernel's dev_valid_name", "[net][ifname]") {
    CHECK(valid_ifname("wg0"));
    CHECK(valid_ifname("wg-mesh"));
    CHECK(valid_ifname("wg_southeast"));
    CHECK(valid_ifname("a"));
    CHECK(valid_ifname("abcdefghijklmno"));  // 15 characters
    CHECK(valid_ifname("..."));
    CHECK(valid_ifname("wg.1"));
    CHECK_FALSE(valid_ifname("abcdefghijklmnop"));  // 16 characters
    CHECK_FALSE(valid_ifname("wg-mesh-production"));
    CHECK_FALSE(valid_ifname(""));
    CHECK_FALSE(valid_ifname("."));
    CHECK_FALSE(valid_ifname(".."));
    CHECK_FALSE(valid_ifname("wg/0"));
    CHECK_FALSE(valid_ifname("wg:0"));
    CHECK_FALSE(valid_ifname("wg 0"));
    CHECK_FALSE(valid_ifname("wg\t0"));
    CHECK_FALSE(valid_ifname("wg\n"));
    std::string why;
    CHECK_FALSE(valid_ifname("abcdefghijklmnop", &why));
    CHECK(why.find("15") != std::string::npos);
}

TEST_CASE("valid_node_name and valid_dns_name", "[net][names]") {
    CHECK(valid_node_name("laptop1"));
    CHECK(valid_node_name("build-box"));
    CHECK(valid_node_name("vm_123"));
    CHECK(valid_node_name("9lives"));
    CHECK(valid_node_name(std::string(63, 'a')));
    CHECK_FALSE(valid_node_name(std::string(64, 'a')));
    CHECK_FALSE(valid_node_name(""));
    CHECK_FALSE(valid_node_name("-x"));
    CHECK_FALSE(valid_node_name("_x"));
    CHECK_FALSE(valid_node_name("a.b"));
    CHECK_FALSE(valid_node_name("a b"));
    CHECK_FALSE(valid_node_name("a/b"));

    CHECK(valid_dns_name("example.internal"));
    CHECK(valid_dns_name("vpn1.example.com"));
    CHECK(valid_dns_name("localhost"));
    CHECK_FALSE(valid_dns_name(""));
    CHECK_FALSE(valid_dns_name("a..b"));
    CHECK_FALSE(valid_dns_name(".example.com"));
    CHECK_FALSE(valid_dns_name("-a.example.com"));
    CHECK_FALSE(valid_dns_name("a-.example.com"));
    CHECK_FALSE(valid_dns_name("a b.com"));
    CHECK_FALSE(valid_dns_name(std::string(64, 'a') + ".com"));
    CHECK(valid_dns_name(std::string(63, 'a') + ".com"));
}

// ---------------------------------------------------------------------------------------------
// Durations

TEST_CASE("parse_duration accepts Go-style durations", "[net][duration]") {
    CHECK(parse_duration("30m") == 1800u);
    CHECK(parse_duration("1h") == 3600u);
    CHECK(parse_duration("2h30m") == 9000u);
    CHECK(parse_duration("1d") == 86400u);
    CHECK(parse_duration("45s") == 45u);
    CHECK(parse_duration("0s") == 0u);
    CHECK(parse_duration("1d2h3m4s") == 93784u);
    CHECK(parse_duration("90m") == 5400u);
    CHECK(parse_duration("1h1h") == 7200u);  // the schema's ^([0-9]+[dhms])+$ allows repeats
}

TEST_CASE("parse_duration rejects malformed text", "[net][duration]") {
    for (const char* t : {"", "30", "30x", "m", "1h-2m", "h1", "1H", "1.5h", " 30m", "30m ", "-30m", "+30m", "30 m", "1h30", "1hm", "1w"}) {
        INFO("'" << t << "'");
        CHECK_FALSE(parse_duration(t).has_value());
    }
}

TEST_CASE("format_duration writes the largest units first and round-trips", "[net][duration]") {
    CHECK(format_duration(1800) == "30m");
    CHECK(format_duration(3600) == "1h");
    CHECK(format_duration(9000) == "2h30m");
    CHECK(format_duration(86400) == "1d");
    CHECK(format_duration(93784) == "1d2h3m4s");
    CHECK(format_duration(45) == "45s");
    CHECK(format_duration(0) == "0s");
    CHECK(format_duration(86400 + 1) == "1d1s");
    for (uint64_t s :
         {0ull, 1ull, 59ull, 60ull, 61ull, 1800ull, 3599ull, 3600ull, 9000ull, 86399ull, 86400ull, 93784ull, 31536000ull, 1000000007ull}) {
        INFO(s);
        auto back = parse_duration(format_duration(s));
        REQUIRE(back);
        CHECK(*back == s);
    }
    CHECK(format_duration(*parse_duration("90m")) == "1h30m");
}
