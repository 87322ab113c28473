// serve --import-python's pure parts and the store's import: wg-quick files as the Python manager
// writes them, its timestamps, and the store taking all clients or none.
#include <catch2/catch.hpp>

#include "../linux_unit/temp_dir.hpp"
#include "../linux_unit/values.hpp"
#include "serve/import_python.hpp"
#include "store/store.hpp"

using namespace wgf;
using test::ip;
using test::key;

namespace {


serve::Client client(uint8_t n, const char* addr, std::optional<std::string> host = std::nullopt) {
    return serve::Client{.fleet = "se",
                         .public_key = key(n),
                         .address = ip(addr),
                         .source_ip = "192.0.2.1",
                         .host_name = std::move(host),
                         .registered = 100,
                         .last_seen = 200};
}

}  // namespace

TEST_CASE("import python: a wg_<fleet>.conf as the Python manager writes it, with peers, comments and odd spacing") {
    const model::SecretKey secret = model::SecretKey::generate();
    const std::string text = "[Interface]\nAddress = fd00::1\nListenPort=51821\n  PrivateKey = " + secret.base64_for_storage() +
                             "  # the server's\n\n[Peer]\nPublicKey = " + key(7).base64() +
                             "\nAllowedIPs = fd00::7, fd00::8/128\n[peer]\npublickey = " + key(9).base64() + "\n";
    std::vector<std::string> errors;
    auto conf = serve::parse_wg_quick(text, "wg_se.conf", errors);
    CHECK(errors.empty());
    REQUIRE(conf.private_key);
    CHECK(*conf.private_key == secret);
    CHECK(conf.listen_port == 51821);
    REQUIRE(conf.addresses.size() == 1);
    CHECK(conf.addresses[0].str() == "fd00::1/128");
    REQUIRE(conf.peers.size() == 2);
    CHECK(conf.peers[0].public_key == key(7));
    CHECK(conf.peers[0].allowed_ips.size() == 2);
    CHECK(conf.peers[0].line == 6);
    CHECK(conf.peers[1].public_key == key(9));
}

TEST_CASE("import python: a bad wg_<fleet>.conf is reported by line, never quoting the private key") {
    const std::string bad_key = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw=!";
    std::vector<std::string> errors;
    auto conf = serve::parse_wg_quick(
        "ListenPort = 1\n[Interface]\nPrivateKey = " + bad_key + "\nListenPort = 70000\nAddress = nowhere\njunk\n", "wg_se.conf", errors);
    CHECK_FALSE(conf.private_key);
    REQUIRE(errors.size() == 5);
    CHECK(errors[0] == "wg_se.conf:1: a setting before any [Interface] or [Peer] section");
    CHECK(errors[1] == "wg_se.conf:3: PrivateKey is not a base64 WireGuard key");
    CHECK(errors[2] == "wg_se.conf:4: ListenPort '70000' is not a port (1..65535)");
    CHECK(errors[3] == "wg_se.conf:5: Address 'nowhere' is not an address");
    CHECK(errors[4] == "wg_se.conf:6: 'junk' is not KEY = VALUE");
    for (const auto& e : errors) CHECK(e.find(bad_key) == std::string::npos);
}

TEST_CASE("import python: timestamps as SQLAlchemy stores them (UTC), with offsets, and as numbers") {
    CHECK(serve::parse_python_time("1970-01-02 00:00:00", false) == 86400);
    CHECK(serve::parse_python_time("1970-01-02 00:00:00.999999", false) == 86400);
    CHECK(serve::parse_python_time("1970-01-02T00:00:00Z", false) == 86400);
    CHECK(serve::parse_python_time("1970-01-02T01:00:00+01:00", false) == 86400);
    CHECK(serve::parse_python_time("1970-01-01T23:30:00-00:30", false) == 86400);
    CHECK(serve::parse_python_time("86400", true) == 86400);
    CHECK(serve::parse_python_time("86400.7", true) == 86400);
    CHECK_FALSE(serve::parse_python_time("yesterday", false));
    CHECK_FALSE(serve::parse_python_time("1970-13-02 00:00:00", false));
    CHECK_FALSE(serve::parse_python_time("1970-01-02 00:00:00 junk", false));
    CHECK_FALSE(serve::parse_python_time("12abc", true));
}

TEST_CASE("store: an import stores every client as given, again changes nothing, and a clash stores none") {
    test::TempDir d;
    serve::Store s(d.str());
    auto n = s.import_clients({client(1, "fd00::10", "excavator"), client(2, "fd00::20")});
    CHECK(n.added == 2);
    CHECK(n.unchanged == 0);
    auto all = s.clients();
    REQUIRE(all.size() == 2);
    CHECK(all[0] == client(1, "fd00::10", "excavator"));
    CHECK(all[1] == client(2, "fd00::20"));

    n = s.import_clients({client(1, "fd00::10", "excavator"), client(3, "fd00::30")});
    CHECK(n.added == 1);
    CHECK(n.unchanged == 1);

    const auto before = s.clients();
    // Each clash comes after a client that would be added: the transaction takes back that one too.
    CHECK_THROWS_WITH(s.import_clients({client(4, "fd00::40"), client(1, "fd00::11")}), Catch::Contains("its key is that of the"));
    CHECK_THROWS_WITH(s.import_clients({client(4, "fd00::40"), client(5, "fd00::20")}), Catch::Contains("its address is that of the"));
    CHECK_THROWS_WITH(s.import_clients({client(4, "fd00::40"), client(5, "fd00::50", "excavator")}),
                      Catch::Contains("its host name excavator is that of the"));
    CHECK(s.clients() == before);
}
