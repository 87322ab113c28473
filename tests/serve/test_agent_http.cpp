// The edge agent API's part of the router without HTTP: requests in, responses out, over a real
// fleet file and drop-in directory in a temporary directory. What an accepted change does (the
// drop-in holds it, a fresh load of the configuration has it, the loop is nudged once), what a
// refused one does not (no write, no nudge), the status codes, and who may ask (X-Agent-Token,
// else loopback only).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../linux_unit/temp_dir.hpp"
#include "serve/agent_http.hpp"

using namespace wgf;
using nlohmann::json;
using serve::Request;
using test::slurp;
namespace fs = std::filesystem;

namespace {

const char* kFleet = R"(fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=, ipv4: 10.50.0.1 }
    peers:
      vm-123: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, ipv4: 10.50.0.123 }
)";

const char* kSeedRoute =
    R"({"route_id": "vm-123", "hostname": "vm-123.service.com", "target_url": "http://10.50.0.123:8080", "entrypoint": "websecure", "certresolver": "dnsresolver"})";
const char* kSeedForward =
    R"({"forward_id": "vm-123-ssh", "public_port": 22015, "target_ip": "10.50.0.123", "target_port": 32215, "proto": "tcp"})";

struct AgentHttp {
    test::TempDir dir{"wgf-agent-http"};
    int changes = 0;
    std::vector<std::string> logged;
    serve::EdgeAgent agent{{.load = load(), .node = "edge1", .file_name = "50-agent.yaml"}};
    std::unique_ptr<serve::AgentHttp> http;

    explicit AgentHttp(std::optional<std::string> token = std::nullopt) {
        std::ofstream(dir.path / "fleet.yaml") << kFleet;
        auto log = [this](const std::string& s) { logged.push_back(s); };
        http = std::make_unique<serve::AgentHttp>(
            agent, std::move(token), [this] { ++changes; }, log, log);
    }
    inputs::LoadOptions load() const {
        return {.config = (dir.path / "fleet.yaml").string(),
                .dropin_dir = (dir.path / "fleet.d").string(),
                .state_dir = (dir.path / "state").string(),
                .keys_only_from = std::nullopt,
                .files_root = std::nullopt};
    }
    fs::path dropin() const { return dir.path / "fleet.d" / "50-agent.yaml"; }
    std::string dropin_text() const { return fs::exists(dropin()) ? slurp(dropin()) : std::string("(none)"); }
    // The configuration as the loop would load it, independently of the agent's own reading.
    std::unique_ptr<inputs::Loaded> loaded() const { return inputs::load(load()); }

    serve::Response ask(const std::string& method, const std::string& path, const std::string& body = "",
                        const std::string& peer = "127.0.0.1") {
        return http->handle(Request{.method = method, .path = path, .body = body, .peer = peer});
    }
};

json body_of(const serve::Response& r) { return json::parse(r.body); }

}  // namespace

TEST_CASE("agent http: a route round-trips: POST, GET lists it, the drop-in and the loaded configuration hold it, DELETE removes it",
          "[serve][agent_http]") {
    AgentHttp fx;
    auto r = fx.ask("POST", "/http/routes", kSeedRoute);
    REQUIRE(r.status == 200);
    CHECK(body_of(r) == json{{"ok", true}, {"route_id", "vm-123"}, {"replaced", false}});
    CHECK(fx.changes == 1);

    r = fx.ask("GET", "/http/routes");
    REQUIRE(r.status == 200);
    CHECK(body_of(r) == json{{"ok", true}, {"routes", {{"vm-123", json::parse(kSeedRoute)}}}});
    auto l = fx.loaded();
    REQUIRE(l->fleet);
    REQUIRE(l->fleet->cfg.http_routes.size() == 1);
    CHECK(l->fleet->cfg.http_routes[0].name == "vm-123");
    CHECK(l->fleet->cfg.http_routes[0].host == "vm-123.service.com");
    CHECK(l->fleet->cfg.http_routes[0].node == "edge1");

    r = fx.ask("DELETE", "/http/routes/vm-123");
    REQUIRE(r.status == 200);
    CHECK(body_of(r) == json{{"ok", true}, {"route_id", "vm-123"}, {"deleted", true}});
    CHECK(fx.changes == 2);
    CHECK(body_of(fx.ask("GET", "/http/routes"))["routes"] == json::object());
    CHECK(fx.loaded()->fleet->cfg.http_routes.empty());
}

TEST_CASE("agent http: a forward round-trips, and a POST with its id again replaces it", "[serve][agent_http]") {
    AgentHttp fx;
    REQUIRE(fx.ask("POST", "/tcp/forwards", kSeedForward).status == 200);
    auto r = fx.ask("GET", "/tcp/forwards");
    CHECK(body_of(r) == json{{"ok", true}, {"forwards", {{"vm-123-ssh", json::parse(kSeedForward)}}}});
    auto l = fx.loaded();
    REQUIRE(l->fleet);
    REQUIRE(l->fleet->cfg.forwards.size() == 1);
    CHECK(l->fleet->cfg.forwards[0].port == 22015);
    CHECK(l->fleet->cfg.forwards[0].to == "10.50.0.123");
    CHECK(l->fleet->cfg.forwards[0].to_port == 32215);

    json moved = json::parse(kSeedForward);
    moved["target_port"] = 2222;
    r = fx.ask("POST", "/tcp/forwards", moved.dump());
    REQUIRE(r.status == 200);
    CHECK(body_of(r)["replaced"] == true);
    CHECK(body_of(fx.ask("GET", "/tcp/forwards"))["forwards"] == json{{"vm-123-ssh", moved}});
    CHECK(fx.changes == 2);

    REQUIRE(fx.ask("DELETE", "/tcp/forwards/vm-123-ssh").status == 200);
    CHECK(fx.loaded()->fleet->cfg.forwards.empty());
    CHECK(fx.changes == 3);
}

TEST_CASE("agent http: a change the configuration refuses gets 400 with the diagnostics, no write and no nudge", "[serve][agent_http]") {
    AgentHttp fx;
    REQUIRE(fx.ask("POST", "/tcp/forwards", kSeedForward).status == 200);
    const std::string before = fx.dropin_text();
    const int changes = fx.changes;

    json outside = json::parse(kSeedForward);
    outside["forward_id"] = "elsewhere";
    outside["target_ip"] = "10.60.0.12";
    auto r = fx.ask("POST", "/tcp/forwards", outside.dump());
    CHECK(r.status == 400);
    const std::string detail = body_of(r)["detail"];
    CHECK(detail.find("'10.60.0.12' — not reachable from 'edge1' over its fleets (reachable: 10.50.0.0/24") != std::string::npos);
    CHECK(detail.find(fx.dropin().string() + ":") != std::string::npos);

    // Another forward of the same public port and protocol: a conflict the validator reports.
    json same_port = json::parse(kSeedForward);
    same_port["forward_id"] = "second";
    CHECK(fx.ask("POST", "/tcp/forwards", same_port.dump()).status == 400);

    json route = json::parse(kSeedRoute);
    route["target_url"] = "http://nosuch-vm:8080";
    r = fx.ask("POST", "/http/routes", route.dump());
    CHECK(r.status == 400);
    CHECK(std::string(body_of(r)["detail"]).find("nosuch-vm") != std::string::npos);

    // An id names the Traefik file: one that would leave http_routes_dir is refused.
    route = json::parse(kSeedRoute);
    route["route_id"] = "../../etc/evil";
    r = fx.ask("POST", "/http/routes", route.dump());
    CHECK(r.status == 400);
    CHECK(std::string(body_of(r)["detail"]).find("names use letters, digits") != std::string::npos);

    CHECK(fx.dropin_text() == before);
    CHECK(fx.changes == changes);
    CHECK(body_of(fx.ask("GET", "/tcp/forwards"))["forwards"].size() == 1);
}

TEST_CASE("agent http: bodies that are not requests get 422, unknown ids 404, and none writes or nudges", "[serve][agent_http]") {
    AgentHttp fx;
    for (const char* body : {"", "{nope", "[]", R"({"forward_id": "x", "target_ip": "10.50.0.123"})",
                             R"({"forward_id": "x", "public_port": 70000, "target_ip": "10.50.0.123"})",
                             R"({"forward_id": "x", "public_port": 22, "target_ip": "vm-123"})",
                             R"({"forward_id": "x", "public_port": 22, "target_ip": "10.50.0.123", "proto": "sctp"})"}) {
        CAPTURE(body);
        auto r = fx.ask("POST", "/tcp/forwards", body);
        CHECK(r.status == 422);
        CHECK(body_of(r).contains("detail"));
    }
    CHECK(fx.ask("POST", "/http/routes", R"({"route_id": "a", "hostname": "a.example.com"})").status == 422);
    auto r = fx.ask("DELETE", "/tcp/forwards/nosuch");
    CHECK(r.status == 404);
    CHECK(body_of(r)["detail"] == "no forward 'nosuch'");
    CHECK(fx.ask("DELETE", "/http/routes/nosuch").status == 404);
    CHECK(fx.changes == 0);
    CHECK(!fs::exists(fx.dropin()));
}

TEST_CASE("agent http: a wrong method gets 405 with Allow, and paths it does not own go to the router's 404", "[serve][agent_http]") {
    AgentHttp fx;
    auto allow = [](const serve::Response& r) {
        for (const auto& [k, v] : r.headers)
            if (k == "Allow") return v;
        return std::string();
    };
    auto r = fx.ask("PUT", "/http/routes", kSeedRoute);
    CHECK(r.status == 405);
    CHECK(allow(r) == "GET, HEAD, POST");
    r = fx.ask("DELETE", "/tcp/forwards");
    CHECK(r.status == 405);
    r = fx.ask("GET", "/tcp/forwards/vm-123-ssh");
    CHECK(r.status == 405);
    CHECK(allow(r) == "DELETE");
    CHECK(fx.ask("POST", "/http/routes/vm-123", kSeedRoute).status == 405);
    CHECK(fx.ask("DELETE", "/http/routes/a/b").status == 404);

    serve::Router router([] { return true; }, [](const std::string&) {});
    router.add(fx.http->part());
    CHECK(router.handle(Request{.method = "GET", .path = "/http/routes", .peer = "127.0.0.1"}).status == 200);
    CHECK(router.handle(Request{.method = "GET", .path = "/http/other", .peer = "127.0.0.1"}).status == 404);
    CHECK(router.handle(Request{.method = "GET", .path = "/tcp", .peer = "127.0.0.1"}).status == 404);
    CHECK(fx.changes == 0);
}

TEST_CASE("agent http: with a token every endpoint needs X-Agent-Token, compared whole, and it is never logged", "[serve][agent_http]") {
    AgentHttp fx("agent-s3cret");
    auto with = [&](const std::string& method, const std::string& path, const std::optional<std::string>& token,
                    const std::string& body = "", const std::string& peer = "127.0.0.1") {
        return fx.http->handle(Request{.method = method, .path = path, .body = body, .peer = peer, .agent_token = token});
    };
    for (const std::optional<std::string>& wrong :
         {std::optional<std::string>(), std::optional<std::string>(""), std::optional<std::string>("agent-s3crez"),
          std::optional<std::string>("agent-s3cret "), std::optional<std::string>("agent-s3cre"),
          std::optional<std::string>("Bearer agent-s3cret")}) {
        CAPTURE(wrong.value_or("(none)"));
        CHECK(with("POST", "/tcp/forwards", wrong, kSeedForward).status == 401);
        CHECK(with("GET", "/tcp/forwards", wrong).status == 401);
        CHECK(with("DELETE", "/tcp/forwards/vm-123-ssh", wrong).status == 401);
    }
    CHECK(fx.changes == 0);
    CHECK(!fs::exists(fx.dropin()));
    // With the token, from anywhere: a non-loopback peer and a proxied request too.
    CHECK(with("POST", "/tcp/forwards", "agent-s3cret", kSeedForward, "192.0.2.7").status == 200);
    CHECK(with("GET", "/tcp/forwards", "agent-s3cret", "", "fd00::7").status == 200);
    CHECK(with("DELETE", "/tcp/forwards/vm-123-ssh", "agent-s3cret").status == 200);
    CHECK(fx.changes == 2);
    for (const auto& l : fx.logged) CHECK(l.find("s3cret") == std::string::npos);
}

TEST_CASE("agent http: without a token only loopback peers not behind a proxy are answered", "[serve][agent_http]") {
    AgentHttp fx;
    for (const char* peer : {"192.0.2.7", "10.50.0.123", "fd00::1", "::ffff:192.0.2.7", ""}) {
        CAPTURE(peer);
        CHECK(fx.ask("POST", "/tcp/forwards", kSeedForward, peer).status == 403);
        CHECK(fx.ask("GET", "/http/routes", "", peer).status == 403);
    }
    auto proxied = Request{
        .method = "POST", .path = "/tcp/forwards", .body = kSeedForward, .peer = "127.0.0.1", .forwarded_for = "192.0.2.7"};
    CHECK(fx.http->handle(proxied).status == 403);
    CHECK(fx.changes == 0);
    CHECK(!fs::exists(fx.dropin()));
    CHECK(fx.ask("GET", "/tcp/forwards", "", "::1").status == 200);
    CHECK(fx.ask("GET", "/tcp/forwards", "", "::ffff:127.0.0.1").status == 200);
    CHECK(fx.ask("POST", "/tcp/forwards", kSeedForward, "127.0.0.2").status == 200);
    CHECK(fx.changes == 1);
}
