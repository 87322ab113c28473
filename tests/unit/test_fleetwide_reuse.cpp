// plan::Fleetwide made from the Fleetwide of the configuration before an edit (the edit path of
// `watch`, which shares the address plan, the node index and the rendered hosts files when the edit
// keeps their inputs) against one made from scratch: on chains of random edits of every example,
// every fuzz seed that parses and a generated fleet, both must give the same plan, the same
// diagnostics from validation, and the same desired state and hosts file for every node.
#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "config/parse.hpp"
#include "helpers.hpp"
#include "plan/render.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using test::slurp;

namespace {

model::Key key_from(std::mt19937& rng) {
    model::Key k;
    for (auto& b : k.bytes) b = static_cast<uint8_t>(rng());
    return k;
}

// One random change of the kind an operator makes, often one that keeps every name and address
// setting (the case the sharing is for), sometimes one that does not.
void mutate(model::Config& cfg, std::mt19937& rng) {
    auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
    if (cfg.fleets.empty()) return;
    auto fit = std::next(cfg.fleets.begin(), static_cast<long>(pick(cfg.fleets.size())));
    model::Fleet& f = fit->second;
    const bool use_controller = !f.controllers.empty() && (f.peers.empty() || rng() % 4 == 0);
    auto& members = use_controller ? f.controllers : f.peers;
    model::Member* m = members.empty() ? nullptr : &std::next(members.begin(), static_cast<long>(pick(members.size())))->second;
    const std::string some_controller = f.controllers.empty()
                                            ? std::string("nowhere")
                                            : std::next(f.controllers.begin(), static_cast<long>(pick(f.controllers.size())))->first;
    const auto v4 = [&](uint8_t a, uint8_t b, uint8_t c, uint8_t len) {
        model::Prefix p;
        p.addr = model::IpAddr::v4((uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8));
        p.len = len;
        return p;
    };
    switch (rng() % 14) {
        case 0:
        case 1:  // a route changed, added or removed: the most common edit
            if (!m) break;
            if (!m->routes.empty() && rng() % 3 == 0) m->routes.erase(m->routes.begin() + static_cast<long>(pick(m->routes.size())));
            else if (!m->routes.empty())
                m->routes[pick(m->routes.size())] = v4(10, static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), 24);
            else m->routes.push_back(v4(172, 16, static_cast<uint8_t>(rng()), 24));
            break;
        case 2:
            if (m)
                m->endpoint = model::Endpoint{.host = fmt::format("host{}.example.com", rng() % 50),
                                              .port = static_cast<uint16_t>(51820 + rng() % 3)};
            break;
        case 3:
            if (m) m->endpoint.reset();
            break;
        case 4:
            if (m) m->public_key = key_from(rng);
            break;
        case 5:  // another designated controller: same plan, other hosts lines
            if (m && !use_controller) {
                if (rng() % 3 == 0) m->controller.reset();
                else m->controller = some_controller;
            }
            break;
        case 6:
            if (m && !use_controller) m->suffix = rng() % 2 ? std::optional<uint64_t>{rng()} : std::nullopt;
            if (m && use_controller) m->id = rng() % 2 ? std::optional<uint16_t>{static_cast<uint16_t>(rng())} : std::nullopt;
            break;
        case 7:
            if (m)
                m->ipv4 = rng() % 2 ? std::optional<model::IpAddr>{model::IpAddr::v4(0x0a640000u + static_cast<uint32_t>(rng() % 200))}
                                    : std::nullopt;
            break;
        case 8: {  // a peer added
            model::Member n;
            n.public_key = key_from(rng);
            if (!f.controllers.empty()) n.controller = some_controller;
            f.peers.emplace(fmt::format("new-{}", rng() % 1000), n);
            break;
        }
        case 9:  // a member removed
            if (!members.empty()) members.erase(std::next(members.begin(), static_cast<long>(pick(members.size()))));
            break;
        case 10:
            if (rng() % 3 == 0) cfg.domain.reset();
            else cfg.domain = fmt::format("d{}.example", rng() % 3);
            break;
        case 11:
            f.keepalive = static_cast<uint16_t>(rng() % 60);
            f.port = static_cast<uint16_t>(51820 + rng() % 2);
            break;
        case 12:
            if (m && !use_controller && rng() % 2) {  // an enrolled client's host name
                m->dynamic = true;
                m->host_name = rng() % 3 ? std::optional<std::string>{fmt::format("h{}", rng() % 4)} : std::nullopt;
            } else {
                f.topology = f.topology == model::Topology::hub ? model::Topology::mesh : model::Topology::hub;
            }
            break;
        default:  // a member renamed
            if (!members.empty()) {
                auto node = members.extract(std::next(members.begin(), static_cast<long>(pick(members.size()))));
                node.key() += "-r";
                members.insert(std::move(node));
            }
            break;
    }
}

struct EveryNode {
    std::string diagnostics;
    std::vector<plan::Desired> desired;  // every node, with files
    std::vector<std::string> hosts;      // every node's hosts file
};

EveryNode derive(const plan::Fleetwide& fw, const config::Node& tree, const config::Sources& sources) {
    EveryNode d;
    config::Diagnostics diags;
    plan::validate(fw.cfg, fw.plan, fw.index, tree, diags);
    d.diagnostics = config::render_all(diags, sources);
    if (diags.has_errors()) return d;
    for (const auto& [node, fleets] : fw.index) {
        d.desired.push_back(plan::render_host(fw, node));
        d.hosts.push_back(fw.hosts_file(node));
    }
    return d;
}

bool valid(const plan::Fleetwide& fw, const config::Node& tree) {
    config::Diagnostics diags;
    plan::validate(fw.cfg, fw.plan, fw.index, tree, diags);
    return !diags.has_errors();
}

struct Count {
    size_t edits = 0, kept = 0, hosts_asked = 0;
};

// A chain of random edits from `base`, each made from the Fleetwide of the last valid
// configuration (as `watch` keeps the configuration in force), compared with a fresh one.
void chain(const std::string& name, const std::string& text, unsigned seed, size_t edits, Count& count) {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed = config::parse({config::SourceFile{.name = name, .text = text}}, sources, diags);
    if (diags.has_errors()) return;
    std::mt19937 rng(seed);
    // Fleetwide refers to its configuration: every configuration stays where it is.
    std::deque<model::Config> configs{parsed.config};
    auto previous = std::make_unique<plan::Fleetwide>(configs.back());
    if (!valid(*previous, parsed.tree)) return;
    // The hosts files of the configuration in force were rendered (its memo is full).
    for (const auto& [node, fleets] : previous->index) (void)previous->hosts_file(node);
    for (size_t i = 0; i < edits; ++i) {
        model::Config next = configs.back();
        mutate(next, rng);
        if (rng() % 5 == 0) mutate(next, rng);
        configs.push_back(std::move(next));
        const model::Config& cfg = configs.back();
        auto shared = std::make_unique<plan::Fleetwide>(cfg, previous.get());
        const plan::Fleetwide fresh(cfg);
        INFO(name << ", edit " << i << " of seed " << seed);
        REQUIRE(shared->plan == fresh.plan);
        REQUIRE(shared->index == fresh.index);
        REQUIRE(shared->peer_routes == fresh.peer_routes);
        REQUIRE(shared->homed_v4 == fresh.homed_v4);
        // A memo holds the file of the node asked last: for a few nodes, the file the
        // configuration in force rendered for it must be what the edit shares only when it is
        // still right.
        for (int k = 0; k < 6 && !previous->index.empty(); ++k) {
            const std::string& node = std::next(previous->index.begin(), static_cast<long>(rng() % previous->index.size()))->first;
            if (!fresh.index.count(node)) continue;
            (void)previous->hosts_file(node);
            const plan::Fleetwide again(cfg, previous.get());
            REQUIRE(again.hosts_file(node) == fresh.hosts_file(node));
        }
        const EveryNode a = derive(*shared, parsed.tree, sources), b = derive(fresh, parsed.tree, sources);
        REQUIRE(a.diagnostics == b.diagnostics);
        REQUIRE(a.desired.size() == b.desired.size());
        for (size_t k = 0; k < a.desired.size(); ++k) {
            REQUIRE(a.desired[k].state == b.desired[k].state);
            REQUIRE(a.desired[k].labels == b.desired[k].labels);
        }
        REQUIRE(a.hosts == b.hosts);
        ++count.edits;
        count.kept += shared->reused_plan();
        count.hosts_asked += a.hosts.size();
        // The next edit starts from this one when it is valid, else from the one in force.
        if (a.diagnostics.find("error") == std::string::npos && valid(*shared, parsed.tree)) {
            previous = std::move(shared);
        } else if (rng() % 4 == 0) {
            configs.push_back(parsed.config);  // back to the file now and then
            previous = std::make_unique<plan::Fleetwide>(configs.back());
        }
    }
}

std::string two_server_fleet(int peers) {
    std::string out = "domain: example.internal\nfleets:\n  bench:\n    ipv4: 10.100.0.0/16\n    controllers:\n";
    out += "      server1:\n        endpoint: vpn1.example.com\n        public_key: sMqTxe7wMHnJNlS5uP7XFi2ev/UDeVdxIzYgNWf0rx8=\n";
    out += "      server2:\n        endpoint: vpn2.example.com\n        public_key: 7FwP3pm/X5vfVG0CFu7vm3CwQB9vF6ml+ml/CpLQDu0=\n";
    out += "    peers:\n";
    std::mt19937 rng(7);
    const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 1; i <= peers; ++i) {
        std::string key;
        for (int k = 0; k < 42; ++k) key += b64[rng() % 64];
        key += "Q=";
        out += fmt::format("      peer-{:04}:\n        controller: server{}\n        public_key: {}\n", i, 1 + i % 2, key);
        if (i % 5 == 0) out += fmt::format("        routes: [10.{}.{}.0/24]\n", i / 256, i % 256);
    }
    return out;
}

}  // namespace

TEST_CASE("Fleetwide: sharing the plan of the configuration before an edit gives what a fresh one gives", "[reuse]") {
    const std::vector<std::filesystem::path> files = test::repo_yaml_files({"examples", "tests/fuzz/corpus"});
    REQUIRE(files.size() >= 10);
    Count count;
    unsigned seed = 1;
    for (const auto& f : files) chain(f.filename().string(), slurp(f), seed++, 150, count);
    chain("generated.yaml", two_server_fleet(120), 77, 150, count);
    INFO(count.kept << " of " << count.edits << " edits kept the plan");
    // The comparisons above are the test; these make sure both paths were compared many times.
    CHECK(count.edits >= 800);
    CHECK(count.kept * 3 >= count.edits);
    CHECK(count.kept < count.edits);
    CHECK(count.hosts_asked > 0);
}

TEST_CASE("Fleetwide: what an edit keeps and what it plans again", "[reuse]") {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed p = config::parse({config::SourceFile{.name = "f.yaml", .text = two_server_fleet(20)}}, sources, diags);
    REQUIRE_FALSE(diags.has_errors());
    const plan::Fleetwide before(p.config);
    const std::string hosts_before = before.hosts_file("server1");

    model::Config route = p.config;
    route.fleets.at("bench").peers.at("peer-0005").routes.clear();
    const plan::Fleetwide after_route(route, &before);
    CHECK(after_route.reused_plan());
    CHECK(after_route.hosts_file("server1") == hosts_before);
    CHECK(after_route.peer_routes != before.peer_routes);

    // Another designated controller: the plan is kept, the peer's hosts line moves to its /56.
    model::Config moved = p.config;
    moved.fleets.at("bench").peers.at("peer-0005").controller = "server1";
    const plan::Fleetwide after_move(moved, &before);
    CHECK(after_move.reused_plan());
    CHECK(after_move.hosts_file("server1") != hosts_before);
    CHECK(after_move.hosts_file("server1") == plan::render_hosts_file(plan::render_hosts_entries(plan::Fleetwide(moved), "server1")));

    // A new name, a pinned suffix, a pinned IPv4 address, another domain: planned again.
    for (auto change : std::vector<std::function<void(model::Config&)>>{
             [](model::Config& c) { c.fleets.at("bench").peers.emplace("tv", model::Member{}); },
             [](model::Config& c) { c.fleets.at("bench").peers.at("peer-0003").suffix = 42; },
             [](model::Config& c) { c.fleets.at("bench").peers.at("peer-0003").ipv4 = model::IpAddr::v4(0x0a640909); },
             [](model::Config& c) { c.fleets.at("bench").controllers.at("server2").id = 7; },
         }) {
        model::Config c = p.config;
        change(c);
        CHECK_FALSE(plan::Fleetwide(c, &before).reused_plan());
    }
    // An enrolled client's host name: the plan is kept, its hosts line is renamed.
    model::Config named = p.config;
    named.fleets.at("bench").peers.at("peer-0005").dynamic = true;
    named.fleets.at("bench").peers.at("peer-0005").host_name = "excavator";
    (void)before.hosts_file("server1");
    const plan::Fleetwide after_name(named, &before);
    CHECK(after_name.reused_plan());
    CHECK(after_name.hosts_file("server1") != hosts_before);
    CHECK(after_name.hosts_file("server1").find(" excavator.bench.") != std::string::npos);

    model::Config domain = p.config;
    domain.domain = "other.example";
    const plan::Fleetwide after_domain(domain, &before);
    CHECK(after_domain.reused_plan());
    CHECK(after_domain.hosts_file("server1") != hosts_before);
}
