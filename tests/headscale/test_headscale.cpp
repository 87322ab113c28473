// serve/headscale: the Headscale API's JSON, the node mapping (allocation, grace period,
// persistence, exhaustion), seed 000's state import and the read side; and the headscale: keys of
// the YAML. Addresses expected below are counted by hand from the pool's start, not taken from
// the code.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "config/parse.hpp"
#include "serve/headscale.hpp"

using namespace wgf;
using namespace wgf::serve::headscale;
using model::IpAddr;
using model::Prefix;

namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }
Prefix pfx(const char* s) { return *Prefix::parse(s); }

// A deterministic stand-in for the key files: node id -> a key whose bytes spell the id.
KeySource fake_keys(std::vector<std::string>* asked = nullptr) {
    return [asked](const std::string& id) -> backend::Result<model::Key> {
        if (asked) asked->push_back(id);
        model::Key k;
        for (size_t i = 0; i < id.size() && i < k.bytes.size(); ++i) k.bytes[i] = static_cast<uint8_t>(id[i]);
        k.bytes[31] = 0x40;
        return k;
    };
}

Node node(std::string id, std::string given = "", std::string name = "") {
    Node n;
    n.id = std::move(id);
    n.given_name = std::move(given);
    n.name = std::move(name);
    return n;
}

SyncInput input(const char* pool, int64_t now = 1000, uint64_t grace = 600) {
    return SyncInput{.pool = pfx(pool), .reserved = {}, .taken_names = {}, .grace = grace, .now = now};
}

std::string addr_of(const Mapping& m, const std::string& id) { return m.nodes.at(id).address.str(); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// GET /api/v1/node

TEST_CASE("headscale: the camelCase node list parses with every field wg-fleet reads", "[headscale][parse]") {
    auto r = parse_nodes(R"({"nodes":[{"id":"1","machineKey":"mkey:aa","nodeKey":"nodekey:bb","discoKey":"discokey:cc",
        "ipAddresses":["100.64.0.1","fd7a:115c:a1e0::1"],"name":"laptop","user":{"id":"1","name":"alice","createdAt":"2024-01-01T00:00:00Z"},
        "lastSeen":"2024-05-01T10:00:00Z","expiry":null,"preAuthKey":null,"createdAt":"2024-01-01T00:00:00Z","registerMethod":"REGISTER_METHOD_CLI",
        "forcedTags":[],"invalidTags":[],"validTags":[],"givenName":"alice-laptop","online":true}]})");
    REQUIRE(r);
    REQUIRE(r->size() == 1);
    const Node& n = r->at(0);
    CHECK(n.id == "1");
    CHECK(n.name == "laptop");
    CHECK(n.given_name == "alice-laptop");
    CHECK(n.ip_addresses == std::vector<std::string>{"100.64.0.1", "fd7a:115c:a1e0::1"});
    CHECK(n.user == "alice");
    CHECK(n.online);
    CHECK(n.last_seen == "2024-05-01T10:00:00Z");
}

TEST_CASE("headscale: the snake_case spellings and numeric ids parse too", "[headscale][parse]") {
    auto r = parse_nodes(R"({"nodes":[{"id":7,"name":"pi","given_name":"garage-pi","ip_addresses":["100.64.0.7"],
        "last_seen":"2024-05-01T10:00:00Z","online":false,"user":{"name":"bob"}},{"id":"12","name":"nas"}]})");
    REQUIRE(r);
    REQUIRE(r->size() == 2);
    CHECK(r->at(0).id == "7");
    CHECK(r->at(0).given_name == "garage-pi");
    CHECK(r->at(0).ip_addresses == std::vector<std::string>{"100.64.0.7"});
    CHECK(r->at(0).last_seen == "2024-05-01T10:00:00Z");
    CHECK(r->at(0).user == "bob");
    CHECK(r->at(1).id == "12");
    CHECK(r->at(1).given_name.empty());
}

TEST_CASE("headscale: unknown fields anywhere are ignored", "[headscale][parse]") {
    auto r = parse_nodes(
        R"({"nodes":[{"id":"3","name":"x","futureField":{"a":[1,2]},"user":{"name":"u","extra":1}}],"nextPageToken":"zz"})");
    REQUIRE(r);
    CHECK(r->at(0).id == "3");
    // An empty list as protojson writes it without EmitUnpopulated.
    auto empty = parse_nodes("{}");
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("headscale: malformed JSON or a wrong shape is an error naming the problem", "[headscale][parse]") {
    struct Case {
        const char* body;
        const char* message;
    };
    const Case cases[] = {
        {R"({"nodes":[{"id":"1")", "Headscale response: not valid JSON"},
        {"", "Headscale response: not valid JSON"},
        {R"([{"id":"1"}])", "Headscale response: expected an object with a \"nodes\" list, got array"},
        {R"({"code":16,"message":"Unauthenticated","details":[]})", "Headscale response: expected an object with a \"nodes\" list"},
        {R"({"nodes":{"id":"1"}})", "Headscale response: expected an object with a \"nodes\" list"},
        {R"({"nodes":["1"]})", "Headscale response: nodes[0]: expected an object, got string"},
        {R"({"nodes":[{"name":"x"}]})", "Headscale response: nodes[0]: no id"},
        {R"({"nodes":[{"id":-1}]})", "Headscale response: nodes[0]: id is not a string or a non-negative integer: -1"},
        {R"({"nodes":[{"id":"1","givenName":5}]})", "Headscale response: nodes[0]: givenName is not a string"},
        {R"({"nodes":[{"id":"1","ip_addresses":"100.64.0.1"}]})", "Headscale response: nodes[0]: ipAddresses is not a list"},
        {R"({"nodes":[{"id":"1"},{"id":1}]})", "Headscale response: node id 1 is listed twice"},
    };
    for (const auto& c : cases) {
        INFO(c.body);
        auto r = parse_nodes(c.body);
        REQUIRE_FALSE(r);
        CHECK(r.error().message == c.message);
    }
}

// ---------------------------------------------------------------------------------------------
// The mapping

TEST_CASE("headscale: new nodes get sequential addresses from the pool's second address", "[headscale][mapping]") {
    std::vector<std::string> asked;
    auto r = sync({}, {node("1", "laptop"), node("2", "phone"), node("3")}, input("10.13.13.0/24"), fake_keys(&asked));
    CHECK(r.problems.empty());
    CHECK(r.added == std::vector<std::string>{"1", "2", "3"});
    CHECK(asked == std::vector<std::string>{"1", "2", "3"});
    CHECK(addr_of(r.mapping, "1") == "10.13.13.2");
    CHECK(addr_of(r.mapping, "2") == "10.13.13.3");
    CHECK(addr_of(r.mapping, "3") == "10.13.13.4");
    CHECK(r.mapping.last_ip == ip("10.13.13.4"));
    CHECK(r.mapping.nodes.at("1").name == "laptop");
    CHECK(r.mapping.nodes.at("3").name == "node-3");

    // A later node follows last_ip; existing nodes keep their addresses and keys.
    auto r2 = sync(r.mapping, {node("1", "laptop"), node("2", "phone"), node("3"), node("9", "tv")}, input("10.13.13.0/24"),
                   fake_keys(&asked));
    CHECK(r2.added == std::vector<std::string>{"9"});
    CHECK(addr_of(r2.mapping, "9") == "10.13.13.5");
    for (const char* id : {"1", "2", "3"}) CHECK(r2.mapping.nodes.at(id) == r.mapping.nodes.at(id));
    CHECK(asked.size() == 4);  // no key asked again for a known node
}

TEST_CASE("headscale: IPv6 pools start at ::2 and skip reserved addresses (the server's, members')", "[headscale][mapping]") {
    SyncInput in = input("fd00:13::/64");
    in.reserved = {ip("fd00:13::2"), ip("fd00:13::4")};
    auto r = sync({}, {node("1"), node("2"), node("3")}, in, fake_keys());
    CHECK(addr_of(r.mapping, "1") == "fd00:13::3");
    CHECK(addr_of(r.mapping, "2") == "fd00:13::5");
    CHECK(addr_of(r.mapping, "3") == "fd00:13::6");
}

TEST_CASE("headscale: a node missing from the list is removed only after the grace period", "[headscale][mapping]") {
    auto r = sync({}, {node("1", "a"), node("2", "b")}, input("10.13.13.0/24", 1000, 600), fake_keys());
    // Node 2 disappears at t=2000.
    auto r2 = sync(r.mapping, {node("1", "a")}, input("10.13.13.0/24", 2000, 600), fake_keys());
    CHECK(r2.removed.empty());
    REQUIRE(r2.mapping.nodes.count("2"));
    CHECK(r2.mapping.nodes.at("2").missing_since == 2000);
    // Still within grace at 2599: kept, and the missing time is not reset.
    auto r3 = sync(r2.mapping, {node("1", "a")}, input("10.13.13.0/24", 2599, 600), fake_keys());
    CHECK(r3.removed.empty());
    CHECK(r3.mapping.nodes.at("2").missing_since == 2000);
    CHECK(members("hs", r3.mapping).size() == 2);
    // At 2600 it goes.
    auto r4 = sync(r3.mapping, {node("1", "a")}, input("10.13.13.0/24", 2600, 600), fake_keys());
    CHECK(r4.removed == std::vector<std::string>{"2"});
    CHECK_FALSE(r4.mapping.nodes.count("2"));
    CHECK(members("hs", r4.mapping).size() == 1);

    // A node back within grace keeps its address and is no longer missing.
    auto back = sync(r3.mapping, {node("1", "a"), node("2", "b")}, input("10.13.13.0/24", 2599, 600), fake_keys());
    CHECK(back.mapping.nodes.at("2").address == r.mapping.nodes.at("2").address);
    CHECK_FALSE(back.mapping.nodes.at("2").missing_since);
}

TEST_CASE("headscale: a held address is never given again, a freed one only after the pool wraps", "[headscale][mapping]") {
    // 10.13.13.0/29: .2 .. .6 usable (network, .1 for the server, broadcast .7 excluded).
    auto r = sync({}, {node("1"), node("2"), node("3")}, input("10.13.13.0/29", 0, 0), fake_keys());
    CHECK(addr_of(r.mapping, "3") == "10.13.13.4");
    // Node 1 goes (grace 0): .2 is free but allocation goes on after last_ip.
    auto r2 = sync(r.mapping, {node("2"), node("3"), node("4"), node("5")}, input("10.13.13.0/29", 1, 0), fake_keys());
    CHECK(r2.removed == std::vector<std::string>{"1"});
    CHECK(addr_of(r2.mapping, "4") == "10.13.13.5");
    CHECK(addr_of(r2.mapping, "5") == "10.13.13.6");
    // The next wraps to .2; then the pool is exhausted and the node is left out, reported.
    auto r3 = sync(r2.mapping, {node("2"), node("3"), node("4"), node("5"), node("6", "six"), node("7", "seven")},
                   input("10.13.13.0/29", 2, 0), fake_keys());
    CHECK(addr_of(r3.mapping, "6") == "10.13.13.2");
    CHECK_FALSE(r3.mapping.nodes.count("7"));
    REQUIRE(r3.problems.size() == 1);
    CHECK(r3.problems[0] == "Headscale node 7 (seven) left out: no free address in the pool 10.13.13.0/29");
    std::set<IpAddr> distinct;
    for (const auto& [id, e] : r3.mapping.nodes) distinct.insert(e.address);
    CHECK(distinct.size() == r3.mapping.nodes.size());
}

TEST_CASE("headscale: names come from givenName, then name, and never clash", "[headscale][mapping]") {
    SyncInput in = input("10.13.13.0/24");
    in.taken_names = {"server", "nas"};
    Node named = node("4", "", "Host Name!");
    Node host_only = node("5", "", "desk");
    auto r = sync({}, {node("1", "laptop"), node("2", "laptop"), node("3", "nas"), named, host_only}, in, fake_keys());
    CHECK(r.mapping.nodes.at("1").name == "laptop");
    CHECK(r.mapping.nodes.at("2").name == "laptop--2");
    CHECK(r.mapping.nodes.at("3").name == "nas--3");
    CHECK(r.mapping.nodes.at("4").name == "node-4");
    CHECK(r.mapping.nodes.at("5").name == "desk");
}

TEST_CASE("headscale: a bad node id or a failing key leaves that node out and takes no address", "[headscale][mapping]") {
    KeySource failing = [](const std::string& id) -> backend::Result<model::Key> {
        if (id == "2") return backend::Error{.code = EIO, .message = "write key: Input/output error (EIO)"};
        return model::Key{};
    };
    auto r = sync({}, {node("1"), node("2"), node("../x"), node("3")}, input("10.13.13.0/24"), failing);
    CHECK(r.added == std::vector<std::string>{"1", "3"});
    CHECK(addr_of(r.mapping, "3") == "10.13.13.3");
    REQUIRE(r.problems.size() == 2);
    CHECK(r.problems[0] == "Headscale node id '../x' left out: ids are letters, digits, '-' and '_', at most 40");
    CHECK(r.problems[1] == "Headscale node 2 (node-2) left out: write key: Input/output error (EIO)");
}

TEST_CASE("headscale: the stored mapping reads back equal, so a restart is idempotent", "[headscale][mapping]") {
    auto r = sync({}, {node("1", "a"), node("2", "b")}, input("fd00:13::/64", 100), fake_keys());
    auto r2 = sync(r.mapping, {node("1", "a")}, input("fd00:13::/64", 200), fake_keys());  // node 2 missing
    const std::string text = mapping_to_json(r2.mapping);
    auto back = mapping_from_json(text);
    REQUIRE(back);
    CHECK(*back == r2.mapping);
    CHECK(back->nodes.at("2").missing_since == 200);
    // The restarted service, polled with the same list, changes nothing and asks for no key.
    std::vector<std::string> asked;
    auto again = sync(*back, {node("1", "a")}, input("fd00:13::/64", 300), fake_keys(&asked));
    CHECK(asked.empty());
    CHECK(again.mapping == *back);
    CHECK(mapping_to_json(again.mapping) == text);
}

TEST_CASE("headscale: a damaged mapping file is an error, not an empty mapping", "[headscale][mapping]") {
    CHECK(mapping_from_json("{").error().message == "not a JSON object");
    CHECK(mapping_from_json(R"({"nodes":{}})").error().message == "unknown format (expected \"format\": 1)");
    CHECK(mapping_from_json(R"({"format":1,"nodes":{"1":{"name":"a","address":"10.0.0.2","public_key":"x"}}})").error().message ==
          "node 1: public_key is not a WireGuard key");
    const std::string k = model::Key{}.base64();
    CHECK(mapping_from_json(R"({"format":1,"nodes":{"1":{"name":"a","address":"10.0.0.2","public_key":")" + k +
                            R"("},"2":{"name":"b","address":"10.0.0.2","public_key":")" + k + R"("}}})")
              .error()
              .message == "node 2: address 10.0.0.2 is held by another node");
}

// ---------------------------------------------------------------------------------------------
// Seed 000's sync-service-state.json

TEST_CASE("headscale: the sync service's state imports with every address kept", "[headscale][import]") {
    const char* state = R"({"processed_nodes": {"1": "10.13.13.2", "node_5": "10.13.13.3", "7": "10.13.13.9"}, "last_ip": "10.13.13.9"})";
    std::vector<std::string> asked;
    auto m = import_sync_state(state, input("10.13.13.0/24"), {}, fake_keys(&asked));
    REQUIRE(m);
    CHECK(addr_of(*m, "1") == "10.13.13.2");
    CHECK(addr_of(*m, "5") == "10.13.13.3");
    CHECK(addr_of(*m, "7") == "10.13.13.9");
    CHECK(m->last_ip == ip("10.13.13.9"));
    CHECK(m->nodes.at("5").name == "node-5");
    CHECK(asked == std::vector<std::string>{"1", "5", "7"});
    // /peers answers as the service did.
    CHECK(nlohmann::json::parse(peers_json(*m)) ==
          nlohmann::json::parse(
              R"({"processed_nodes": {"1": "10.13.13.2", "5": "10.13.13.3", "7": "10.13.13.9"}, "last_ip": "10.13.13.9"})"));
    // The next new node follows the imported last_ip; imported nodes keep theirs.
    auto r = sync(*m, {node("1"), node("5"), node("7"), node("8")}, input("10.13.13.0/24"), fake_keys());
    CHECK(addr_of(r.mapping, "8") == "10.13.13.10");
    CHECK(addr_of(r.mapping, "5") == "10.13.13.3");
    // Importing the same file again changes nothing and generates no key.
    asked.clear();
    auto again = import_sync_state(state, input("10.13.13.0/24"), *m, fake_keys(&asked));
    REQUIRE(again);
    CHECK(*again == *m);
    CHECK(asked.empty());
}

TEST_CASE("headscale: a state file that cannot be kept whole is refused", "[headscale][import]") {
    SyncInput in = input("10.13.13.0/24");
    in.reserved = {ip("10.13.13.5")};
    struct Case {
        const char* text;
        const char* message;
    };
    const Case cases[] = {
        {"nope", "sync state: not valid JSON"},
        {R"({"last_ip": "10.13.13.2"})", "sync state: no \"processed_nodes\" object of node id -> address"},
        {R"({"processed_nodes": {"1": "10.14.0.2"}})",
         "sync state: processed_nodes.1: 10.14.0.2 is outside the pool 10.13.13.0/24 (set headscale.pool to the service's subnet)"},
        {R"({"processed_nodes": {"1": "10.13.13.5"}})",
         "sync state: processed_nodes.1: 10.13.13.5 is an address the fleet itself holds (its server or a member)"},
        {R"({"processed_nodes": {"1": "10.13.13.1"}})",
         "sync state: processed_nodes.1: 10.13.13.1 is not an address the pool 10.13.13.0/24 gives nodes (its network, first and "
         "broadcast addresses are not)"},
        {R"({"processed_nodes": {"1": "10.13.13.2", "2": "10.13.13.2"}})",
         "sync state: processed_nodes.2: 10.13.13.2 is also node 1's address"},
        {R"({"processed_nodes": {"1": "10.13.13.2", "node_1": "10.13.13.3"}})",
         "sync state: processed_nodes.node_1: node 1 is listed twice"},
        {R"({"processed_nodes": {"1": 5}})", "sync state: processed_nodes.1: expected an address string, got 5"},
        {R"({"processed_nodes": {"a/b": "10.13.13.2"}})",
         "sync state: processed_nodes.a/b: not a node id (letters, digits, '-' and '_', at most 40)"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto m = import_sync_state(c.text, in, {}, fake_keys());
        REQUIRE_FALSE(m);
        CHECK(m.error().message == c.message);
    }
    // A node the mapping already holds elsewhere.
    auto held = import_sync_state(R"({"processed_nodes": {"1": "10.13.13.2"}})", in, {}, fake_keys());
    REQUIRE(held);
    auto clash = import_sync_state(R"({"processed_nodes": {"1": "10.13.13.6"}})", in, *held, fake_keys());
    REQUIRE_FALSE(clash);
    CHECK(clash.error().message == "sync state: node 1 has 10.13.13.6 here but 10.13.13.2 already");
}

// ---------------------------------------------------------------------------------------------
// The read side and the members

TEST_CASE("headscale: members, /peers, /health and a node's config", "[headscale][read]") {
    auto r = sync({}, {node("1", "laptop"), node("2", "phone")}, input("10.13.13.0/24"), fake_keys());
    auto ms = members("hs", r.mapping);
    REQUIRE(ms.size() == 2);
    CHECK(ms[0].fleet == "hs");
    CHECK(ms[0].name == "laptop");
    CHECK(ms[0].address == ip("10.13.13.2"));
    CHECK(ms[0].public_key == r.mapping.nodes.at("1").public_key);
    auto mj = nlohmann::json::parse(members_json(ms));
    CHECK(mj[1]["name"] == "phone");
    CHECK(mj[1]["address"] == "10.13.13.3");
    CHECK(mj[1]["public_key"] == r.mapping.nodes.at("2").public_key.base64());

    CHECK(nlohmann::json::parse(peers_json(r.mapping)) ==
          nlohmann::json::parse(R"({"processed_nodes": {"1": "10.13.13.2", "2": "10.13.13.3"}, "last_ip": "10.13.13.3"})"));
    CHECK(nlohmann::json::parse(peers_json({})) == nlohmann::json::parse(R"({"processed_nodes": {}, "last_ip": null})"));

    auto h = nlohmann::json::parse(health_json(Health{.last_success = 1700000000, .last_error = "", .nodes = 2}));
    CHECK(h["status"] == "ok");
    CHECK(h["nodes"] == 2);
    CHECK(h["last_error"].is_null());

    const model::SecretKey priv = model::SecretKey::generate();
    const model::SecretKey server = model::SecretKey::generate();
    ServerSide side{.public_key = server.public_key(),
                    .endpoint = model::Endpoint{.host = "vpn.example.com", .port = 51820},
                    .allowed_ips = {pfx("10.13.13.0/24")},
                    .keepalive = 25,
                    .mtu = std::nullopt};
    CHECK_FALSE(peer_config(r.mapping, "99", priv, side));
    auto conf = peer_config(r.mapping, "2", priv, side);
    REQUIRE(conf);
    CHECK(*conf ==
          "# wg-quick config of Headscale node 2 (phone), rendered by wg-fleet.\n"
          "[Interface]\n"
          "PrivateKey = " +
              priv.base64_for_storage() +
              "\nAddress = 10.13.13.3/32\n"
              "\n[Peer]\n"
              "PublicKey = " +
              server.public_key().base64() +
              "\nAllowedIPs = 10.13.13.0/24\n"
              "Endpoint = vpn.example.com:51820\n"
              "PersistentKeepalive = 25\n");
}

// ---------------------------------------------------------------------------------------------
// The YAML

namespace {

struct Parsed {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    std::vector<std::string> errors() const {
        std::vector<std::string> out;
        for (const auto& d : diags.sorted())
            if (d.severity == config::Severity::error)
                out.push_back(fmt::format("{}:{}: {}: {}", d.loc.line, d.loc.col, d.path, d.message));
        return out;
    }
};

std::unique_ptr<Parsed> parse(const std::string& yaml) {
    auto p = std::make_unique<Parsed>();
    p->parsed = config::parse_text(yaml, "fleet.yaml", p->sources, p->diags);
    return p;
}

const std::string kFleetHead = "fleets:\n  hs:\n    ip6: fd00:13::1\n    subnet: fd00:13::/64\n    ipv4: 10.13.13.0/24\n";

}  // namespace

TEST_CASE("headscale: the fleet's headscale: keys parse, with defaults", "[headscale][yaml]") {
    auto p = parse(kFleetHead + "    headscale: { url: 'https://hs.example.com', api_key_file: /etc/wg-fleet/headscale.key }\n");
    INFO(fmt::format("{}", fmt::join(p->errors(), "\n")));
    REQUIRE(p->errors().empty());
    const auto& h = p->parsed.config.fleets.at("hs").headscale;
    REQUIRE(h);
    CHECK(h->url == "https://hs.example.com");
    CHECK(h->api_key_file == "/etc/wg-fleet/headscale.key");
    CHECK(h->poll_interval == 30);
    CHECK(h->timeout == 10);
    CHECK(h->grace == 600);
    CHECK_FALSE(h->pool);

    auto q = parse(kFleetHead +
                   "    headscale:\n      url: http://127.0.0.1:8080/hs\n      api_key_file: /k\n      poll_interval: 1m\n"
                   "      timeout: 5s\n      grace: 1h\n      pool: 10.13.13.0/24\n");
    REQUIRE(q->errors().empty());
    const auto& h2 = *q->parsed.config.fleets.at("hs").headscale;
    CHECK(h2.poll_interval == 60);
    CHECK(h2.timeout == 5);
    CHECK(h2.grace == 3600);
    CHECK(h2.pool == pfx("10.13.13.0/24"));
}

TEST_CASE("headscale: bad headscale: values are located errors", "[headscale][yaml]") {
    auto p = parse(kFleetHead +
                   "    headscale:\n"
                   "      url: ftp://x\n"
                   "      api_key_file: key.txt\n"
                   "      poll_interval: 0s\n"
                   "      grace: soon\n"
                   "      pool: 192.168.0.0/24\n"
                   "      api_keyfile: abc\n");
    CHECK(p->errors() ==
          std::vector<std::string>{
              "7:12: fleets.hs.headscale.url: 'ftp://x' — expected an http:// or https:// URL such as https://headscale.example.com",
              "8:21: fleets.hs.headscale.api_key_file: 'key.txt' — must be an absolute path",
              "9:22: fleets.hs.headscale.poll_interval: '0s' — must be at least 1s",
              "10:14: fleets.hs.headscale.grace: 'soon' — a duration is like 30s, 10m or 1h (units d, h, m, s)",
              "11:13: fleets.hs.headscale.pool: '192.168.0.0/24' — the pool must lie inside the fleet's subnet fd00:13::/64 or its "
              "ipv4 10.13.13.0/24",
              "12:7: fleets.hs.headscale.api_keyfile: unknown key 'api_keyfile' — did you mean 'api_key_file'?",
          });
    auto missing = parse(kFleetHead + "    headscale: {}\n");
    CHECK(missing->errors() == std::vector<std::string>{"6:16: fleets.hs.headscale: missing required key 'url'",
                                                        "6:16: fleets.hs.headscale: missing required key 'api_key_file'"});
    auto clan = parse("fleets:\n  c:\n    controllers: { a: {} }\n    headscale: { url: 'http://x', api_key_file: /k }\n");
    CHECK(clan->errors() ==
          std::vector<std::string>{
              "4:5: fleets.c.headscale: a fleet is either clan-style (controllers:) or subnet-style (ip6:, subnet:), not both"});
}
