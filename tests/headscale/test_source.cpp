// The Headscale source as desired state and as serve's HTTP part: the mapping's nodes are members
// of every load (addresses as the mapping holds them, IPv4 pools pinned, clashes left out, the
// file's own members untouched), the desired-state cache keys on the mapping file, and the part's
// answers that need no Headscale server (fleet choice, the loopback-or-token rule, 405, /health).
// Addresses expected below are the ones written into the mapping file, read back through the
// address plan.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../linux_unit/temp_dir.hpp"
#include "../linux_unit/values.hpp"
#include "inputs/desired_cache.hpp"
#include "inputs/enrolled.hpp"
#include "inputs/load.hpp"
#include "plan/address_plan.hpp"
#include "serve/headscale_source.hpp"
#include "store/headscale_mapping.hpp"
#include "store/store.hpp"

using namespace wgf;
namespace hs = wgf::serve::headscale;
using model::IpAddr;
using test::ip;

namespace {


model::Key key(uint8_t seed) {
    model::Key k;
    for (size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<uint8_t>(seed + i);
    return k;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A served fleet with headscale: and one member of its own, "alpha".
std::string fleet_yaml(const std::string& state_dir, const std::string& pool_lines = "") {
    return fmt::format(R"(state_dir: {}
fleets:
  hs:
    ip6: fd00:13::1
    subnet: fd00:13::/64
    ipv4: 10.13.0.0/16
    external_ip: 192.0.2.1
    public_key: {}
    headscale:
      url: http://127.0.0.1:1
      api_key_file: /nonexistent/key
{}    peers:
      alpha: {{ public_key: {} }}
)",
                       state_dir, key(100).base64(), pool_lines, key(150).base64());
}

struct Fixture {
    test::TempDir dir{"wgf-hs-source"};
    std::string state() const { return dir.str() + "/state"; }
    std::string config() const { return dir.str() + "/fleet.yaml"; }

    std::unique_ptr<inputs::Loaded> load(const std::string& pool_lines = "") {
        write(config(), fleet_yaml(state(), pool_lines));
        return inputs::load(
            inputs::LoadOptions{.config = config(), .dropin_dir = {}, .state_dir = {}, .keys_only_from = {}, .files_root = {}});
    }
    void mapping(const hs::Mapping& m) {
        std::filesystem::create_directories(hs::mapping_dir(state()));
        write(hs::mapping_path(state(), "hs"), hs::mapping_to_json(m));
    }
};

hs::Mapping two_nodes(const char* a, const char* b) {
    hs::Mapping m;
    m.nodes.emplace("1", hs::Entry{.name = "laptop", .address = ip(a), .public_key = key(1), .missing_since = std::nullopt});
    m.nodes.emplace("2", hs::Entry{.name = "phone", .address = ip(b), .public_key = key(2), .missing_since = std::nullopt});
    m.last_ip = ip(b);
    return m;
}

std::set<IpAddr> planned(const inputs::Loaded& l, const std::string& node) {
    std::set<IpAddr> out;
    const plan::FleetPlan fp = plan::plan_fleet("hs", l.cfg().fleets.at("hs"));
    for (const auto& p : fp.nodes.at(node).addresses) out.insert(p.addr);
    return out;
}

std::string errors(const inputs::Loaded& l) {
    std::string out;
    for (const auto& d : l.diags.all()) out += d.message + "\n";
    return out;
}

}  // namespace

TEST_CASE("headscale source: the mapping's nodes are members of every load, at the mapping's addresses", "[headscale][source]") {
    Fixture fx;
    auto without = fx.load();
    REQUIRE(without->fleet);
    fx.mapping(two_nodes("fd00:13::2", "fd00:13::3"));
    auto l = fx.load();
    INFO(errors(*l));
    REQUIRE(l->fleet);
    const auto& peers = l->cfg().fleets.at("hs").peers;
    REQUIRE(peers.count("laptop"));
    REQUIRE(peers.count("phone"));
    CHECK(peers.at("laptop").dynamic);
    CHECK(peers.at("laptop").public_key == key(1));
    CHECK(planned(*l, "laptop").count(ip("fd00:13::2")));
    CHECK(planned(*l, "phone").count(ip("fd00:13::3")));
    // The file's own member keeps its addresses.
    CHECK(planned(*l, "alpha") == planned(*without, "alpha"));
    // What the source allocates against is the file's configuration, nodes left out.
    CHECK(inputs::without_dynamic_members(l->cfg()).fleets == without->cfg().fleets);
    // A one-shot run's cached desired state is keyed on the mapping file too.
    auto in = inputs::cache_inputs(l->cfg());
    CHECK(std::find(in.begin(), in.end(), hs::mapping_path(fx.state(), "hs")) != in.end());
}

TEST_CASE("headscale source: nodes of an IPv4 pool are pinned there, with a subnet address of their own", "[headscale][source]") {
    Fixture fx;
    const std::string pool = "      pool: 10.13.13.0/24\n";
    auto without = fx.load(pool);
    REQUIRE(without->fleet);
    fx.mapping(two_nodes("10.13.13.2", "10.13.13.3"));
    auto l = fx.load(pool);
    INFO(errors(*l));
    REQUIRE(l->fleet);
    auto laptop = planned(*l, "laptop"), phone = planned(*l, "phone");
    CHECK(laptop.count(ip("10.13.13.2")));
    CHECK(phone.count(ip("10.13.13.3")));
    // Each has one subnet address too, and no two members share one.
    auto v6 = [](const std::set<IpAddr>& s) { return std::count_if(s.begin(), s.end(), [](const IpAddr& a) { return !a.is_v4(); }); };
    CHECK(v6(laptop) == 1);
    CHECK(v6(phone) == 1);
    std::set<IpAddr> all;
    size_t n = 0;
    const plan::FleetPlan fp = plan::plan_fleet("hs", l->cfg().fleets.at("hs"));
    for (const auto& [name, na] : fp.nodes)
        for (const auto& p : na.addresses) all.insert(p.addr), ++n;
    CHECK(all.size() == n);
    CHECK(planned(*l, "alpha") == planned(*without, "alpha"));
}

TEST_CASE("headscale source: a node that clashes with the file is left out with a warning, a damaged mapping is an error",
          "[headscale][source]") {
    Fixture fx;
    hs::Mapping m = two_nodes("fd00:13::2", "fd00:13::3");
    m.nodes.at("2").name = "alpha";  // the file's member
    fx.mapping(m);
    auto l = fx.load();
    REQUIRE(l->fleet);
    CHECK(l->cfg().fleets.at("hs").peers.count("laptop"));
    CHECK(l->cfg().fleets.at("hs").peers.at("alpha").public_key == key(150));
    CHECK_THAT(errors(*l), Catch::Contains("the name alpha is taken"));

    write(hs::mapping_path(fx.state(), "hs"), "{\"format\": 1, \"nodes\": [");
    auto bad = fx.load();
    CHECK_FALSE(bad->fleet);
    CHECK_THAT(errors(*bad), Catch::Contains(hs::mapping_path(fx.state(), "hs")) && Catch::Contains("not a Headscale mapping"));
}

TEST_CASE("headscale source: the mapping file reads back, and none is no mapping", "[headscale][source]") {
    test::TempDir dir("wgf-hs-map");
    CHECK_FALSE(hs::read_mapping(dir.str() + "/none.json"));
    hs::Mapping m = two_nodes("10.0.0.2", "10.0.0.3");
    m.nodes.at("2").missing_since = 1234;
    write(dir.str() + "/m.json", hs::mapping_to_json(m));
    CHECK(hs::read_mapping(dir.str() + "/m.json") == m);
    write(dir.str() + "/bad.json", "[]");
    CHECK_THROWS_AS(hs::read_mapping(dir.str() + "/bad.json"), serve::StoreError);
}

TEST_CASE("headscale source: parts add their state to /health beside status", "[headscale][source]") {
    serve::Router router([] { return true; }, [](const std::string&) {});
    router.add_health("one", [] { return std::string(R"({"nodes": 3})"); });
    router.add_health("none", [] { return std::string(); });
    auto r = router.handle(serve::Request{.method = "GET", .path = "/health"});
    REQUIRE(r.status == 200);
    auto j = nlohmann::json::parse(r.body);
    CHECK(j["status"] == "ok");
    CHECK(j["one"]["nodes"] == 3);
    CHECK_FALSE(j.contains("none"));
}

TEST_CASE("headscale source: the part picks the fleet, guards configs and answers only GET", "[headscale][source]") {
    test::TempDir dir("wgf-hs-part");
    serve::Store store(dir.str());
    std::vector<std::string> logged;
    serve::HeadscaleSource source({.enrolled = store,
                                   .changed = [] {},
                                   .now = [] { return int64_t{1000}; },
                                   .info = [&](const std::string& s) { logged.push_back(s); },
                                   .warn = [&](const std::string& s) { logged.push_back(s); }});
    CHECK(source.health().empty());
    auto get = [&](std::string path, std::string peer = "127.0.0.1", std::optional<std::string> auth = std::nullopt,
                   std::map<std::string, std::string> query = {}) {
        return source.handle(serve::Request{.method = "GET",
                                            .path = std::move(path),
                                            .query = std::move(query),
                                            .peer = std::move(peer),
                                            .authorization = std::move(auth)});
    };
    CHECK(get("/peers").status == 404);  // no view yet: no fleet with headscale: is served

    model::Config cfg;
    cfg.state_dir = dir.str();
    for (const char* name : {"a", "b"}) {
        model::Fleet f;
        f.style = model::FleetStyle::subnet;
        f.subnet = *model::Prefix::parse(name == std::string("a") ? "fd00:a::/64" : "fd00:b::/64");
        f.headscale = model::Headscale{.url = "http://127.0.0.1:1", .api_key_file = "/k", .pool = std::nullopt};
        cfg.fleets.emplace(name, f);
    }
    source.set_view(
        serve::HeadscaleView{.cfg = serve::headscale_fleets(cfg, "server"), .server_keys = {}, .token = "s3cret", .trusted_proxies = {}});
    CHECK(get("/peers").status == 400);  // two fleets: name one
    CHECK(get("/peers", "127.0.0.1", std::nullopt, {{"fleet", "c"}}).status == 404);
    auto a = get("/peers", "127.0.0.1", std::nullopt, {{"fleet", "a"}});
    CHECK(a.status == 200);
    CHECK(nlohmann::json::parse(a.body) == nlohmann::json::parse(R"({"processed_nodes": {}, "last_ip": null})"));

    CHECK(get("/peer/1/config", "192.0.2.7").status == 403);
    CHECK(get("/peer/1/config", "192.0.2.7", "Bearer wrong").status == 403);
    CHECK(get("/peer/1/config", "192.0.2.7", "Bearer s3cret").status == 404);  // past the guard: no such node
    CHECK(get("/peer/1/config", "::ffff:127.0.0.1").status == 404);
    CHECK(get("/peer/1").status == 404);

    auto post = source.handle(serve::Request{.method = "POST", .path = "/peers"});
    CHECK(post.status == 405);
    CHECK(post.headers == decltype(post.headers){{"Allow", "GET, HEAD"}});

    auto health = nlohmann::json::parse(source.health());
    CHECK(health["a"]["status"] == "starting");
    CHECK(health["b"]["nodes"] == 0);
    CHECK(logged.empty());
}

TEST_CASE("headscale source: only fleets this node serves are polled", "[headscale][source]") {
    model::Config cfg;
    model::Fleet f;
    f.style = model::FleetStyle::subnet;
    f.subnet = *model::Prefix::parse("fd00:a::/64");
    f.headscale = model::Headscale{.url = "http://127.0.0.1:1", .api_key_file = "/k", .pool = std::nullopt};
    model::Member dyn;
    dyn.dynamic = true;
    f.peers.emplace("node", dyn);
    f.peers.emplace("file", model::Member{});
    cfg.fleets.emplace("mine", f);
    f.server = "other";
    cfg.fleets.emplace("theirs", f);
    f.server = "server";
    f.headscale.reset();
    cfg.fleets.emplace("plain", f);
    auto v = serve::headscale_fleets(cfg, "server");
    REQUIRE(v.fleets.size() == 1);
    CHECK(v.fleets.at("mine").peers.size() == 1);
    CHECK(v.fleets.at("mine").peers.count("file"));
}

TEST_CASE("headscale source: bearer tokens compare whole", "[headscale][source]") {
    CHECK(serve::bearer_matches("Bearer abc", "abc"));
    CHECK_FALSE(serve::bearer_matches("Bearer ab", "abc"));
    CHECK_FALSE(serve::bearer_matches("Bearer abcd", "abc"));
    CHECK_FALSE(serve::bearer_matches("abc", "abc"));
    CHECK_FALSE(serve::bearer_matches(std::nullopt, "abc"));
}
