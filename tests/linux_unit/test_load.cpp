// apply::load with the previous load: an edit is parsed by its part only while the previous
// load still has its tree, and the result equals a load from nothing.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "inputs/load.hpp"
#include "temp_dir.hpp"

using namespace wgf;

namespace {

const char* kFleet = R"(state_dir: STATE
fleets:
  mesh:
    port: 51820
    controllers:
      server1:
        endpoint: vpn1.example.com
    peers:
      laptop:
        controller: server1
        public_key: e7xL7jDAVLRvOjHTnUUaOcVxiDtswzo8WFamIb9jwy4=
      phone:
        controller: server1
        public_key: 7FwP3pm/X5vfVG0CFu7vm3CwQB9vF6ml+ml/CpLQDu0=
)";

std::string parse_phase(const inputs::Loaded& l) { return l.timings.phases().front().first; }

}  // namespace

TEST_CASE("load: an edit after a load that failed is parsed whole, then by its part again", "[load]") {
    test::TempDir d;
    const std::string cfg = (d.path / "fleet.yaml").string();
    auto write = [&](std::string text) {
        text.replace(text.find("STATE"), 5, (d.path / "state").string());
        std::ofstream(cfg + ".new") << text;
        std::filesystem::rename(cfg + ".new", cfg);
    };
    std::string text = kFleet;
    write(text);
    inputs::LoadOptions o;
    o.config = cfg;
    auto in_force = inputs::load(o);
    REQUIRE(in_force->fleet);
    REQUIRE(parse_phase(*in_force) == "parse");

    // Valid YAML, invalid fleet: parsed by its part (the tree in force is given up), refused.
    std::string bad = text;
    bad.replace(bad.find("port: 51820"), 11, "port: 0");
    write(bad);
    auto refused = inputs::load(o, {}, in_force.get());
    CHECK(parse_phase(*refused) == "parse (edited part)");
    CHECK_FALSE(refused->fleet);
    CHECK(refused->diags.has_errors());

    // The configuration in force is the first one, which has no tree left: a whole parse.
    std::string good = text;
    good.replace(good.find("vpn1.example.com"), 16, "vpn2.example.com");
    write(good);
    auto next = inputs::load(o, {}, in_force.get());
    CHECK(parse_phase(*next) == "parse");
    REQUIRE(next->fleet);
    CHECK(next->cfg().fleets.at("mesh").controllers.at("server1").endpoint->str() == "vpn2.example.com");

    // From a load that kept its tree: by the edited part, equal to a load from nothing.
    std::string renamed = good;
    renamed.replace(renamed.find("      phone:"), 12, "      tablet:");
    write(renamed);
    auto edited = inputs::load(o, {}, next.get());
    CHECK(parse_phase(*edited) == "parse (edited part)");
    REQUIRE(edited->fleet);
    auto whole = inputs::load(o);
    CHECK(edited->parsed.tree == whole->parsed.tree);
    CHECK(edited->cfg().fleets.at("mesh").peers.count("tablet") == 1);
    CHECK(edited->cfg().fleets.at("mesh").peers.count("phone") == 0);
}
