// The state directory's files: state.json (what wg-fleet owns) and the early guess at this
// node's interfaces read from it before the fleet file is parsed.
#include <catch2/catch.hpp>

#include <fstream>

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
