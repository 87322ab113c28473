// Enrolled clients (serve's store) merged into the file's configuration: what fits becomes a
// pinned peer of its fleet; what does not is left out with a warning and never makes the file
// invalid; a host name never gives two hosts entries the same name.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "inputs/enrolled.hpp"
#include "plan/render.hpp"

using namespace wgf;
using wgf::test::check;

namespace {

constexpr const char* kYaml = R"(domain: example.internal
fleets:
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
    port: 51821
    public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0=
    peers:
      web: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
)";

model::Key key(uint8_t b) {
    model::Key k{};
    k.bytes.fill(b);
    return k;
}

inputs::DynamicMember client(const char* addr, uint8_t k, std::optional<std::string> host) {
    auto a = *model::IpAddr::parse(addr);
    return inputs::DynamicMember{.fleet = "southeast",
                                 .name = inputs::enrolled_name("southeast", *model::Prefix::parse("fd00:a0a8:34d:2a00::/64"), a),
                                 .public_key = key(k),
                                 .address = a,
                                 .host_name = std::move(host),
                                 .source = "serve.db"};
}

std::vector<std::string> warnings(const test::Loaded& l) {
    std::vector<std::string> out;
    for (const auto& d : l.warnings()) out.push_back(d.message);
    return out;
}

}  // namespace

TEST_CASE("enrolled: clients that fit become peers, and a taken address, key or foreign fleet is left out with a warning") {
    auto l = check(kYaml);
    REQUIRE(l->errors().empty());
    const size_t before = l->warnings().size();
    auto other = client("fd00:a0a8:34d:2a00::5", 9, std::nullopt);
    other.fleet = "nowhere";
    auto server_addr = client("fd00:a0a8:34d:2a00::1", 10, std::nullopt);
    auto outside = client("fd00:99::2", 11, std::nullopt);
    auto dup_key = client("fd00:a0a8:34d:2a00::7", 1, std::nullopt);
    inputs::merge_dynamic_members(
        l->parsed,
        {client("fd00:a0a8:34d:2a00::2", 1, "db"), client("fd00:a0a8:34d:2a00::3", 2, std::nullopt), other, server_addr, outside, dup_key},
        l->diags);
    const auto& peers = l->cfg().fleets.at("southeast").peers;
    CHECK(peers.size() == 3);
    CHECK(peers.count("southeast.2"));
    CHECK(peers.count("southeast.3"));
    CHECK(peers.at("southeast.2").host_name == std::optional<std::string>("db"));
    CHECK(peers.at("southeast.2").dynamic);
    CHECK(l->warnings().size() == before + 4);
    CHECK(l->errors().empty());
}

TEST_CASE("enrolled: a host name a file member holds, or another client already has, gives no second hosts entry") {
    auto l = check(kYaml);
    REQUIRE(l->errors().empty());
    inputs::merge_dynamic_members(l->parsed,
                                  {client("fd00:a0a8:34d:2a00::2", 1, "web"), client("fd00:a0a8:34d:2a00::3", 2, "server"),
                                   client("fd00:a0a8:34d:2a00::4", 3, "db"), client("fd00:a0a8:34d:2a00::5", 4, "db")},
                                  l->diags);
    const auto& peers = l->cfg().fleets.at("southeast").peers;
    REQUIRE(peers.size() == 5);  // every client is still a peer
    CHECK_FALSE(peers.at("southeast.2").host_name);
    CHECK_FALSE(peers.at("southeast.3").host_name);
    CHECK(peers.at("southeast.4").host_name == std::optional<std::string>("db"));
    CHECK_FALSE(peers.at("southeast.5").host_name);
    auto w = warnings(*l);
    CHECK(std::count_if(w.begin(), w.end(), [](const std::string& m) { return m.find("keeps no hosts entry") != std::string::npos; }) == 3);
    plan::Fleetwide fw(l->cfg());
    std::map<std::string, int> seen;
    for (const auto& e : plan::render_hosts_entries(fw, "")) ++seen[e.name];
    for (const auto& [name, n] : seen) {
        INFO(name);
        CHECK(n == 1);
    }
    CHECK(seen.count("db.southeast.example.internal"));
    CHECK(seen.count("web.southeast.example.internal"));
}
