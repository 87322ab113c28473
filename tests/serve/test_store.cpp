// serve's store on a real SQLite file in a temporary directory: allocation, the full pool,
// concurrent registrations, host names, removal, the file's mode, the read-only reader.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "../linux_unit/temp_dir.hpp"
#include "../linux_unit/values.hpp"
#include "store/prune.hpp"
#include "store/store.hpp"

using namespace wgf;
using serve::Pool;
using serve::Store;
using test::ip;
using test::key;

namespace {


Pool pool(const char* subnet, const char* server) { return Pool{.subnet = *model::Prefix::parse(subnet), .server = ip(server)}; }

}  // namespace

TEST_CASE("store: addresses skip the subnet's first address and the server's, a known key keeps its address") {
    test::TempDir d;
    Store s(d.str());
    auto p = pool("fd00:1::/64", "fd00:1::1");
    auto a = s.register_client("se", p, key(1), "192.0.2.1", 100);
    auto b = s.register_client("se", p, key(2), "192.0.2.2", 100);
    REQUIRE(a.client);
    REQUIRE(b.client);
    CHECK(a.client->address == ip("fd00:1::2"));
    CHECK(b.client->address == ip("fd00:1::3"));
    auto again = s.register_client("se", p, key(1), "192.0.2.9", 200);
    CHECK(again.existing);
    CHECK(again.client->address == ip("fd00:1::2"));
    // Another fleet allocates independently.
    auto other = s.register_client("nw", pool("fd00:2::/64", "fd00:2::1"), key(1), "192.0.2.1", 100);
    CHECK(other.client->address == ip("fd00:2::2"));
    CHECK(s.clients().size() == 3);
    CHECK(s.clients(std::string("se")).size() == 2);
}

TEST_CASE("store: a full subnet registers nothing, and a removed client's address is given out again") {
    test::TempDir d;
    Store s(d.str());
    auto p = pool("fd00:1::/126", "fd00:1::1");  // ::1 server, ::2 and ::3 free
    CHECK(s.register_client("se", p, key(1), "x", 1).client->address == ip("fd00:1::2"));
    CHECK(s.register_client("se", p, key(2), "x", 1).client->address == ip("fd00:1::3"));
    auto full = s.register_client("se", p, key(3), "x", 1);
    CHECK_FALSE(full.client);
    CHECK(s.clients().size() == 2);
    CHECK(s.remove("se", {key(1)}) == 1);
    CHECK(s.register_client("se", p, key(3), "x", 1).client->address == ip("fd00:1::2"));
}

TEST_CASE("store: addresses other members hold (Headscale nodes, the file's) are never a client's") {
    test::TempDir d;
    Store s(d.str());
    const std::set<model::IpAddr> held{ip("fd00:1::2"), ip("fd00:1::4"), ip("fd00:1::5")};
    auto p = pool("fd00:1::/64", "fd00:1::1");
    p.reserved = &held;
    CHECK(s.register_client("se", p, key(1), "x", 1).client->address == ip("fd00:1::3"));
    CHECK(s.register_client("se", p, key(2), "x", 1).client->address == ip("fd00:1::6"));
    // A small subnet whose free addresses others hold is full.
    auto small = pool("fd00:2::/126", "fd00:2::1");
    const std::set<model::IpAddr> all{ip("fd00:2::2"), ip("fd00:2::3")};
    small.reserved = &all;
    CHECK_FALSE(s.register_client("nw", small, key(3), "x", 1).client);
}

TEST_CASE("store: concurrent registrations from threads and a second connection never share an address") {
    test::TempDir d;
    Store s(d.str());
    Store s2(d.str());  // another process, as far as SQLite's locking goes
    auto p = pool("fd00:1::/64", "fd00:1::1");
    std::vector<std::thread> threads;
    for (uint8_t t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (uint8_t i = 0; i < 25; ++i) (t % 2 ? s : s2).register_client("se", p, key(t, i), "x", 1);
        });
    for (auto& t : threads) t.join();
    auto all = s.clients();
    std::set<model::IpAddr> addrs;
    for (const auto& c : all) addrs.insert(c.address);
    CHECK(all.size() == 200);
    CHECK(addrs.size() == 200);
    CHECK_FALSE(addrs.count(ip("fd00:1::1")));
}

TEST_CASE("store: the file is 0600 under a permissive umask and made 0600 when it was not") {
    test::TempDir d;
    mode_t old = umask(0);
    { Store s(d.str()); }
    umask(old);
    struct stat st {};
    REQUIRE(stat(serve::store_path(d.str()).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    chmod(serve::store_path(d.str()).c_str(), 0644);
    { Store s(d.str()); }
    REQUIRE(stat(serve::store_path(d.str()).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("store: host names are numbered on duplicates, kept on repeated pings, never another client's") {
    test::TempDir d;
    Store s(d.str());
    auto p = pool("fd00:1::/64", "fd00:1::1");
    for (uint8_t i = 1; i <= 4; ++i) s.register_client("se", p, key(i), "x", 1);
    auto name = [&](const char* addr, const char* want) {
        auto r = s.ping("se", ip(addr), std::string(want), 5);
        return r.outcome == serve::PingOutcome::ok ? *r.host_name : std::string("!");
    };
    CHECK(name("fd00:1::2", "excavator") == "excavator");
    CHECK(name("fd00:1::3", "excavator") == "excavator--2");
    CHECK(name("fd00:1::3", "excavator") == "excavator--2");  // keeps its name
    CHECK(name("fd00:1::2", "excavator") == "excavator");
    CHECK(name("fd00:1::4", "excavator--2") == "excavator--2--2");
    CHECK(name("fd00:1::5", "excavator") == "excavator--3");
    CHECK(s.ping("se", ip("fd00:1::9"), std::nullopt, 5).outcome == serve::PingOutcome::unknown_client);
    // A ping without a name keeps the name and updates last_seen.
    auto r = s.ping("se", ip("fd00:1::2"), std::nullopt, 77);
    CHECK(*r.host_name == "excavator");
    CHECK(s.clients().front().last_seen == 77);
    // A numbered name beyond 63 characters is refused, and nothing changes.
    std::string long_name(63, 'a');
    CHECK(name("fd00:1::2", long_name.c_str()) == long_name);
    CHECK(s.ping("se", ip("fd00:1::3"), long_name, 9).outcome == serve::PingOutcome::bad_host_name);
    CHECK(*s.clients()[1].host_name == "excavator--2");
}

TEST_CASE("store: a host name a file member holds is numbered like another client's") {
    test::TempDir d;
    Store s(d.str());
    auto p = pool("fd00:1::/64", "fd00:1::1");
    s.register_client("se", p, key(1), "x", 1);
    const std::set<std::string> members{"server", "web"};
    CHECK(*s.ping("se", ip("fd00:1::2"), std::string("web"), 5, members).host_name == "web--2");
    CHECK(*s.ping("se", ip("fd00:1::2"), std::string("web"), 6, members).host_name == "web--2");
    CHECK(*s.ping("se", ip("fd00:1::2"), std::string("server"), 7, members).host_name == "server--2");
    CHECK(*s.ping("se", ip("fd00:1::2"), std::string("db"), 8, members).host_name == "db");
}

TEST_CASE("store: host name rule and numbering, pure") {
    CHECK(serve::valid_host_name("a-b_c9"));
    CHECK_FALSE(serve::valid_host_name("Upper"));
    CHECK_FALSE(serve::valid_host_name("dot.ted"));
    CHECK_FALSE(serve::valid_host_name(""));
    CHECK_FALSE(serve::valid_host_name(std::string(64, 'a')));
    CHECK(serve::dedup_host_name("x", std::nullopt, {"x", "x--2"}) == "x--3");
    CHECK(serve::dedup_host_name("x", std::string("x--7"), {"x"}) == "x--7");
    CHECK(serve::dedup_host_name("x", std::string("x--07"), {"x"}) == "x--2");
    CHECK(serve::dedup_host_name("x", std::string("y"), {}) == "x");
}

TEST_CASE("store: the read-only reader sees every client, a missing file is none, garbage is an error naming the file") {
    test::TempDir d;
    CHECK(serve::read_clients(serve::store_path(d.str())).empty());
    {
        Store s(d.str());
        s.register_client("se", pool("fd00:1::/64", "fd00:1::1"), key(1), "192.0.2.1", 1);
    }
    auto all = serve::read_clients(serve::store_path(d.str()));
    REQUIRE(all.size() == 1);
    CHECK(all[0].public_key == key(1));
    std::string bad = d.str() + "/bad.db";
    std::ofstream(bad) << "this is not a database, it is a text file long enough to have a header..............................";
    try {
        serve::read_clients(bad);
        FAIL("no error");
    } catch (const serve::StoreError& e) {
        CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
}

TEST_CASE("prune: the last handshake counts, else the last ping or registration") {
    serve::Client a{.fleet = "se", .public_key = key(1), .last_seen = 1000};
    serve::Client b{.fleet = "se", .public_key = key(2), .last_seen = 1000};
    serve::Client c{.fleet = "se", .public_key = key(3), .last_seen = 2900};
    std::map<model::Key, int64_t> hs{{key(1), 2500}, {key(3), 100}};
    // timeout 1000 at 3000: a's handshake (2500) keeps it, b (never, seen 1000) goes, c's old
    // handshake (100) counts although it pinged at 2900.
    auto gone = serve::clients_to_prune({a, b, c}, hs, 3000, 1000);
    CHECK(gone == std::vector<model::Key>{key(2), key(3)});
    CHECK(serve::clients_to_prune({b}, {}, 2000, 1000).empty());  // exactly the timeout: kept
}
