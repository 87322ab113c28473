// The state directory's files: state.json (what wg-fleet owns) and the early guess at this
// node's interfaces read from it before the fleet file is parsed.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "system/kept_firewall.hpp"
#include "system/state_store.hpp"
#include "temp_dir.hpp"

using namespace wgf;

namespace {

model::Key key_of(uint8_t n) {
    model::Key k;
    k.bytes[0] = n;
    return k;
}

}  // namespace

TEST_CASE("state: saved, loaded back equal, and its interfaces read on their own", "[state]") {
    test::TempDir d("wgf-state");
    system::FileStateStore store(d.str());
    CHECK(system::recorded_interfaces(d.str()).empty());  // no record yet
    auto none = store.load();
    REQUIRE(none);
    CHECK(*none == plan::Ownership{});

    plan::Ownership o;
    o.interfaces = {"wg-a", "wg-b"};
    for (uint8_t i = 1; i <= 200; ++i) o.peers["wg-a"].insert(key_of(i));
    o.peers["wg-b"] = {};
    o.endpoints["wg-a"] = {};
    o.endpoints["wg-b"] = {};
    o.files = {"/run/wg_fleet_hosts"};
    REQUIRE(store.save(o));
    auto back = store.load();
    REQUIRE(back);
    CHECK(*back == o);
    CHECK(system::recorded_interfaces(d.str()) == o.interfaces);
}

TEST_CASE("state: a damaged state.json is an error to load and no guess", "[state]") {
    test::TempDir d("wgf-state");
    std::ofstream(d.path / "state.json") << "{\"version\": 1, \"interf";
    system::FileStateStore store(d.str());
    auto r = store.load();
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("state.json is not readable") != std::string::npos);
    CHECK(system::recorded_interfaces(d.str()).empty());
}

TEST_CASE("state: a kept record is used while state.json is unchanged, read again once it changed", "[state]") {
    test::TempDir d("wgf-state");
    std::optional<system::KeptRecord> keep;
    system::FileStateStore store(d.str(), &keep);
    plan::Ownership o;
    o.interfaces = {"wg-a"};
    o.peers["wg-a"] = {key_of(1)};
    REQUIRE(store.save(o));
    REQUIRE(keep);
    // Marks the kept copy: a load that returns the mark did not read the file.
    keep->owned.files.insert("/kept");
    auto kept = store.load();
    REQUIRE(kept);
    CHECK(kept->files.count("/kept") == 1);

    // Another process replaces the record.
    plan::Ownership other = o;
    other.peers["wg-a"].insert(key_of(2));
    REQUIRE(system::FileStateStore(d.str()).save(other));
    auto replaced = store.load();
    REQUIRE(replaced);
    CHECK(*replaced == other);

    // Written in place (no rename): read again, here to an error.
    std::ofstream(d.path / "state.json", std::ios::app) << "garbage";
    CHECK_FALSE(store.load());
    CHECK_FALSE(keep);
}

// state_dir/firewall.kept decides which firewall reads are skipped: only a record this build
// wrote, in a file no one else may write, is ever loaded.
TEST_CASE("state: the firewall record is loaded back only by the build that wrote it, from a file no one else may write",
          "[state][kept_firewall]") {
    test::TempDir d("wgf-kept-fw");
    system::FileKeptFirewall store(d.str(), "elf:build-a");
    CHECK_FALSE(store.load());  // none yet
    backend::KeptFirewall k{.generation = "0b5c3c36-1f7e-4d1e-9d44-2b7e0b6c1e11 4096 77 3", .digest = std::string(64, 'a')};
    REQUIRE(store.save(k));
    CHECK(std::filesystem::status(store.path()).permissions() ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    auto back = store.load();
    REQUIRE(back);
    CHECK(*back == k);

    SECTION("another build's record is none") {
        CHECK_FALSE(system::FileKeptFirewall(d.str(), "elf:build-b").load());
        CHECK_FALSE(system::FileKeptFirewall(d.str(), "").load());
    }
    SECTION("a record group or others may write is none") {
        std::filesystem::permissions(store.path(), std::filesystem::perms::others_write, std::filesystem::perm_options::add);
        CHECK_FALSE(store.load());
        REQUIRE(store.save(k));  // replaced, 0600 again
        CHECK(store.load());
    }
    SECTION("a record cut short, or with more than its three lines, is none") {
        std::string whole = test::slurp(store.path());
        std::ofstream(store.path(), std::ios::trunc) << whole.substr(0, whole.size() - 10);
        CHECK_FALSE(store.load());
        std::ofstream(store.path(), std::ios::trunc) << whole << "more\n";
        CHECK_FALSE(store.load());
    }
    SECTION("a link in its place is not followed") {
        std::filesystem::rename(store.path(), d.path / "elsewhere");
        std::filesystem::create_symlink(d.path / "elsewhere", store.path());
        CHECK_FALSE(store.load());
    }
    SECTION("a generation or digest that is not one line is refused") {
        CHECK_FALSE(store.save({.generation = "a\nb", .digest = k.digest}));
        CHECK_FALSE(store.save({.generation = "", .digest = k.digest}));
    }
}
