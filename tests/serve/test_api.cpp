// The API without HTTP: requests in, responses out, on a real store in a temporary directory.
// The token (constant-time compared, required on register and ping), X-Forwarded-For only from
// trusted proxies, the config a client gets, and that no request before the first converge or
// with an error stores anything.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../linux_unit/temp_dir.hpp"
#include "../linux_unit/values.hpp"
#include "serve/api.hpp"
#include "serve/router.hpp"

using namespace wgf;
using serve::Request;
using test::ip;
using test::prefix;

namespace {


struct Fixture {
    test::TempDir dir;
    serve::Store store{dir.str()};
    int changes = 0;
    std::vector<std::string> logged;
    serve::Api api{store, [this] { ++changes; }, [] { return int64_t{1000}; }, [this](const std::string& s) { logged.push_back(s); },
                   [this](const std::string& s) { logged.push_back(s); }};

    serve::View view(std::optional<std::string> token = std::nullopt) {
        serve::ServedFleet f{.subnet = prefix("fd00:1::/64"),
                             .server_ip = ip("fd00:1::1"),
                             .port = 51820,
                             .external_ip = "vpn.example.com",
                             .keepalive = 25,
                             .interface = "wg_se",
                             .server_key = model::Key{}};
        return serve::View{
            .fleets = {{"se", f}}, .domain = std::nullopt, .token = std::move(token), .trusted_proxies = {prefix("10.0.0.0/8")}};
    }
};

Request post(const std::string& path, const std::string& body = "", const std::string& peer = "127.0.0.1") {
    return Request{.method = "POST", .path = path, .body = body, .peer = peer};
}

}  // namespace

TEST_CASE("api: nothing is served before the first converge") {
    Fixture fx;
    CHECK(fx.api.handle(post("/fleet/se/register")).status == 503);
    CHECK(fx.store.clients().empty());
}

TEST_CASE("api: with a token, register and ping need it, and a wrong one of any length stores nothing") {
    Fixture fx;
    fx.api.set_view(fx.view("s3cret-token"));
    CHECK(fx.api.handle(post("/fleet/se/register")).status == 401);
    auto r = post("/fleet/se/register");
    r.authorization = "Bearer s3cret-tokem";
    CHECK(fx.api.handle(r).status == 401);
    r.authorization = "Bearer s3cret";
    CHECK(fx.api.handle(r).status == 401);
    r.authorization = "s3cret-token";
    CHECK(fx.api.handle(r).status == 401);
    CHECK(fx.store.clients().empty());
    CHECK(fx.changes == 0);
    r.authorization = "Bearer s3cret-token";
    auto ok = fx.api.handle(r);
    CHECK(ok.status == 200);
    CHECK(fx.changes == 1);
    CHECK(fx.api.handle(post("/fleet/se/ping", "{}", "fd00:1::2")).status == 401);
    // The dashboard is read-only: no token needed; the token never appears in a log line.
    CHECK(fx.api.handle(Request{.method = "GET", .path = "/"}).status == 200);
    for (const auto& l : fx.logged) CHECK(l.find("s3cret") == std::string::npos);
}

TEST_CASE("api: X-Forwarded-For counts only from a trusted proxy, right-most untrusted hop first") {
    std::vector<model::Prefix> trusted{prefix("10.0.0.0/8")};
    CHECK(serve::client_address("192.0.2.7", std::string("fd00:1::2"), trusted) == ip("192.0.2.7"));
    CHECK(serve::client_address("10.1.2.3", std::string("fd00:1::9, fd00:1::2"), trusted) == ip("fd00:1::2"));
    CHECK(serve::client_address("10.1.2.3", std::string("fd00:1::2, 10.9.9.9"), trusted) == ip("fd00:1::2"));
    CHECK(serve::client_address("10.1.2.3", std::string("garbage"), trusted) == std::nullopt);
    CHECK(serve::client_address("::ffff:192.0.2.1", std::nullopt, trusted) == ip("192.0.2.1"));
}

TEST_CASE("api: a ping through a trusted proxy is the forwarded client's") {
    Fixture fx;
    fx.api.set_view(fx.view());
    auto reg = fx.api.handle(post("/fleet/se/register"));
    REQUIRE(reg.status == 200);
    auto ping = post("/fleet/se/ping", R"({"hostname": "laptop"})", "10.0.0.1");
    ping.forwarded_for = "fd00:1::2";
    CHECK(fx.api.handle(ping).status == 200);
    CHECK(fx.store.clients().front().host_name == "laptop");
    ping.peer = "192.0.2.1";  // not a proxy: its header is ignored, and it is outside the subnet
    CHECK(fx.api.handle(ping).status == 403);
}

TEST_CASE("api: a host name one of the fleet file's members has is numbered") {
    Fixture fx;
    auto v = fx.view();
    v.fleets.at("se").member_names = {"server", "laptop"};
    fx.api.set_view(std::move(v));
    REQUIRE(fx.api.handle(post("/fleet/se/register")).status == 200);
    CHECK(fx.api.handle(post("/fleet/se/ping", R"({"hostname": "laptop"})", "fd00:1::2")).status == 200);
    CHECK(fx.store.clients().front().host_name == "laptop--2");
}

TEST_CASE("api: the register answer: a wg-quick config with the server as peer, port and server address") {
    Fixture fx;
    fx.api.set_view(fx.view());
    auto own = model::SecretKey::generate().public_key();
    auto r = fx.api.handle(post("/fleet/se/register", nlohmann::json{{"public_key", own.base64()}}.dump()));
    REQUIRE(r.status == 200);
    auto j = nlohmann::json::parse(r.body);
    CHECK(j["status"] == "success");
    CHECK(j["port"] == 51820);
    CHECK(j["server_ip"] == "fd00:1::1");
    std::string conf = j["config"];
    CHECK(conf.find("Address = fd00:1::2/64\n") != std::string::npos);
    CHECK(conf.find("Endpoint = vpn.example.com:51820\n") != std::string::npos);
    CHECK(conf.find("AllowedIPs = fd00:1::/64\n") != std::string::npos);
    CHECK(conf.find("PrivateKey = <") != std::string::npos);
    CHECK(fx.store.clients().front().public_key == own);
}

TEST_CASE("api: the fleet page's JSON is what nlohmann's dump writes, every client's store values in it") {
    Fixture fx;
    fx.api.set_view(fx.view());
    REQUIRE(fx.api.handle(post("/fleet/se/register")).status == 200);
    // A peer address that does not parse is kept as its text: one that needs escaping.
    REQUIRE(fx.api.handle(post("/fleet/se/register", "", "we\"ird\\peer\n")).status == 200);
    REQUIRE(fx.api.handle(post("/fleet/se/ping", R"({"hostname": "excavator"})", "fd00:1::2")).status == 200);
    auto r = fx.api.handle(Request{.method = "GET", .path = "/fleet/se", .query = {{"format", "json"}}});
    REQUIRE(r.status == 200);
    auto j = nlohmann::json::parse(r.body);
    CHECK(r.body == j.dump());
    CHECK(j["fleet"] == "se");
    CHECK(j["subnet"] == "fd00:1::/64");
    auto clients = fx.store.clients("se");
    REQUIRE(j["clients"].size() == clients.size());
    for (size_t i = 0; i < clients.size(); ++i) {
        const auto& c = clients[i];
        const auto& row = j["clients"][i];
        CHECK(row["address"] == c.address.str());
        CHECK(row["public_key"] == c.public_key.base64());
        CHECK(row["source_ip"] == c.source_ip);
        CHECK(row["hostname"] == (c.host_name ? nlohmann::json(*c.host_name) : nlohmann::json(nullptr)));
        CHECK(row["registered"] == c.registered);
        CHECK(row["last_seen"] == c.last_seen);
        CHECK(row["latest_handshake"] == 0);
        CHECK(row["health"] == "never");
        CHECK(row.size() == 8);
    }
    CHECK(j["clients"][1]["source_ip"] == "we\"ird\\peer\n");
    CHECK(j["clients"][0]["hostname"] == "excavator");
}

TEST_CASE("router: /health says whether serve is ready, each path goes to the part that owns it, the rest is 404") {
    Fixture fx;
    serve::Router router([&fx] { return fx.api.ready(); }, [&fx](const std::string& s) { fx.logged.push_back(s); });
    router.add(serve::Part{.name = "enrollment", .owns = serve::Api::owns, .handle = [&fx](const Request& r) { return fx.api.handle(r); }});
    int agent_calls = 0;
    router.add(serve::Part{.name = "agent",
                           .owns = [](const std::vector<std::string>& seg) { return !seg.empty() && seg[0] == "http"; },
                           .handle = [&agent_calls](const Request& r) -> serve::Response {
                               ++agent_calls;
                               if (r.method == "DELETE") throw std::runtime_error("disk full");
                               return serve::Response{.status = 201};
                           }});
    auto health = router.handle(Request{.method = "GET", .path = "/health"});
    CHECK(health.status == 503);
    CHECK(nlohmann::json::parse(health.body)["status"] == "starting");
    fx.api.set_view(fx.view());
    health = router.handle(Request{.method = "GET", .path = "/health/"});
    CHECK(health.status == 200);
    CHECK(nlohmann::json::parse(health.body)["status"] == "ok");
    auto wrong = router.handle(post("/health"));
    CHECK(wrong.status == 405);
    CHECK(wrong.headers == std::vector<std::pair<std::string, std::string>>{{"Allow", "GET, HEAD"}});
    CHECK(router.handle(Request{.method = "GET", .path = "/"}).status == 200);
    CHECK(router.handle(Request{.method = "GET", .path = "/fleet/nope"}).status == 404);
    CHECK(router.handle(post("/http/routes")).status == 201);
    CHECK(agent_calls == 1);
    CHECK(router.handle(Request{.method = "GET", .path = "/tcp/forwards"}).status == 404);
    CHECK(router.handle(Request{.method = "GET", .path = "/peers"}).status == 404);
    fx.logged.clear();
    CHECK(router.handle(Request{.method = "DELETE", .path = "/http/routes/x"}).status == 500);
    REQUIRE(fx.logged.size() == 1);
    CHECK(fx.logged[0].find("disk full") != std::string::npos);
    CHECK(fx.logged[0].find("agent") != std::string::npos);
}
