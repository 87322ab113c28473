// serve/agent: the edge agent API's drop-in. Each change is checked by loading the whole
// configuration (inputs::load) and, where it is accepted, by rendering the gateway's desired
// state from the real directory: the DNAT rules and Traefik files `apply` would make.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "plan/render.hpp"
#include "serve/agent.hpp"

using namespace wgf;
using test::slurp;
using serve::AgentEntries;
using serve::AgentForward;
using serve::AgentResult;
using serve::AgentRoute;
using Status = serve::AgentResult::Status;
namespace fs = std::filesystem;

namespace {

const char* kFleet = R"(fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=, ipv4: 10.50.0.1 }
    peers:
      vm-123: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, ipv4: 10.50.0.123 }
forwards:
  - { name: main-ssh, node: edge1, port: 2222, to: vm-123, to_port: 22 }
)";

// A fleet file and its drop-in directory in a directory of their own, removed afterwards.
struct Site {
    fs::path dir;
    Site() {
        std::string tmpl = (fs::temp_directory_path() / "wgf-agent-test.XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()));
        dir = tmpl;
        std::ofstream(dir / "fleet.yaml") << kFleet;
    }
    ~Site() { fs::remove_all(dir); }
    fs::path dropins() const { return dir / "fleet.d"; }
    fs::path dropin() const { return dropins() / "50-agent.yaml"; }
    inputs::LoadOptions load() const {
        return {.config = (dir / "fleet.yaml").string(),
                .dropin_dir = dropins().string(),
                .state_dir = (dir / "state").string(),
                .keys_only_from = std::nullopt,
                .files_root = std::nullopt};
    }
    serve::EdgeAgent agent() const { return serve::EdgeAgent({.load = load(), .node = "edge1", .file_name = "50-agent.yaml"}); }
};

AgentRoute route(const std::string& body) { return std::get<AgentRoute>(serve::route_from_json(body)); }
AgentForward forward(const std::string& body) { return std::get<AgentForward>(serve::forward_from_json(body)); }

const char* kSeedRoute =
    R"({"route_id": "vm-123", "hostname": "vm-123.service.com", "target_url": "http://10.50.0.123:8080", "entrypoint": "websecure", "certresolver": "dnsresolver"})";
const char* kSeedForward =
    R"({"forward_id": "vm-123-ssh", "public_port": 22015, "target_ip": "10.50.0.123", "target_port": 32215, "proto": "tcp"})";

}  // namespace

TEST_CASE("agent: the seed's request bodies parse field for field and print back the same", "[serve][agent]") {
    AgentRoute r = route(kSeedRoute);
    CHECK(r.route_id == "vm-123");
    CHECK(r.hostname == "vm-123.service.com");
    CHECK(r.target_url == "http://10.50.0.123:8080");
    CHECK(r.entrypoint == "websecure");
    CHECK(r.certresolver == std::optional<std::string>("dnsresolver"));
    CHECK(nlohmann::json::parse(serve::route_to_json(r)) == nlohmann::json::parse(kSeedRoute));
    AgentForward f = forward(kSeedForward);
    CHECK(f.forward_id == "vm-123-ssh");
    CHECK(f.public_port == 22015);
    CHECK(f.target_ip == "10.50.0.123");
    CHECK(f.target_port == 32215);
    CHECK(f.proto == "tcp");
    CHECK(nlohmann::json::parse(serve::forward_to_json(f)) == nlohmann::json::parse(kSeedForward));
    // Defaults: entrypoint websecure, no cert resolver, proto tcp, target_port = public_port.
    AgentRoute r2 = route(R"({"route_id": "a", "hostname": "a.example.com", "target_url": "http://10.50.0.5/", "extra": 1})");
    CHECK(r2.entrypoint == "websecure");
    CHECK_FALSE(r2.certresolver);
    AgentForward f2 = forward(R"({"forward_id": "b", "public_port": "8080", "target_ip": "fda1:cb10:b4:ba00::5"})");
    CHECK(f2.proto == "tcp");
    CHECK(f2.public_port == 8080);
    CHECK(f2.target_port == 8080);
}

TEST_CASE("agent: malformed bodies name the field", "[serve][agent]") {
    auto ferr = [](const std::string& body) {
        auto v = serve::forward_from_json(body);
        REQUIRE(std::holds_alternative<std::string>(v));
        return std::get<std::string>(v);
    };
    CHECK(ferr("{") == "the body is not valid JSON");
    CHECK(ferr("[1]") == "expected a JSON object");
    CHECK(ferr(R"({"public_port": 1, "target_ip": "10.50.0.5"})") == "forward_id: required");
    CHECK(ferr(R"({"forward_id": "x", "public_port": 70000, "target_ip": "10.50.0.5"})") ==
          "public_port: expected a port 1..65535, got 70000");
    CHECK(ferr(R"({"forward_id": "x", "public_port": 80, "target_ip": "vm-123"})") ==
          "target_ip: expected an IPv4 or IPv6 address, got \"vm-123\"");
    CHECK(ferr(R"({"forward_id": "x", "public_port": 80, "target_ip": "10.50.0.5", "proto": "sctp"})") ==
          "proto: expected \"tcp\" or \"udp\", got \"sctp\"");
    auto rerr = serve::route_from_json(R"({"route_id": "x", "hostname": 5, "target_url": "http://a/"})");
    REQUIRE(std::holds_alternative<std::string>(rerr));
    CHECK(std::get<std::string>(rerr) == "hostname: expected a string, got 5");
}

TEST_CASE("agent: added entries round-trip through the marked drop-in and reach the gateway's desired state", "[serve][agent]") {
    Site site;
    auto agent = site.agent();
    CHECK(std::get<AgentEntries>(agent.entries()) == AgentEntries{});
    AgentResult a = agent.add_route(route(kSeedRoute));
    INFO(a.message);
    REQUIRE(a.status == Status::ok);
    REQUIRE(agent.add_forward(forward(kSeedForward)).status == Status::ok);
    AgentForward udp6 = forward(R"({"forward_id": "dns6", "public_port": 53, "target_ip": "fda1:cb10:b4:ba00::53", "proto": "udp"})");
    REQUIRE(agent.add_forward(udp6).status == Status::ok);

    const std::string text = slurp(site.dropin());
    CHECK(text.rfind(std::string(model::kFileMarker) + "\n", 0) == 0);
    auto held = std::get<AgentEntries>(agent.entries());
    CHECK(held.routes == std::vector<AgentRoute>{route(kSeedRoute)});
    CHECK(held.forwards == std::vector<AgentForward>{forward(kSeedForward), udp6});

    // The real directory loads, and edge1's render has the DNAT rules and the Traefik file.
    auto l = inputs::load(site.load());
    INFO(config::render_all(l->diags, l->sources));
    REQUIRE(l->fleet);
    model::HostState hs = plan::render_host(*l->fleet, "edge1").state;
    REQUIRE(hs.firewall.count("dnat-vm-123-ssh-v4"));
    CHECK(hs.firewall.at("dnat-vm-123-ssh-v4").to->str() == "10.50.0.123");
    CHECK(hs.firewall.at("dnat-vm-123-ssh-v4").port == 22015);
    CHECK(hs.firewall.at("dnat-vm-123-ssh-v4").to_port == 32215);
    REQUIRE(hs.firewall.count("dnat-dns6-v6"));
    CHECK(hs.firewall.at("dnat-dns6-v6").proto == model::Proto::udp);
    CHECK(hs.firewall.count("dnat-main-ssh-v4") == 1);  // the main file's forward stays
    REQUIRE(hs.files.count("/etc/traefik/dynamic/vm-123.yml"));
    CHECK(hs.files.at("/etc/traefik/dynamic/vm-123.yml").content.find("Host(`vm-123.service.com`)") != std::string::npos);
}

TEST_CASE("agent: an invalid request returns the diagnostics and changes nothing", "[serve][agent]") {
    Site site;
    auto agent = site.agent();
    SECTION("no drop-in yet: none is created") {
        AgentResult r = agent.add_forward(forward(R"({"forward_id": "far", "public_port": 80, "target_ip": "10.60.0.5"})"));
        CHECK(r.status == Status::invalid);
        INFO(r.message);
        CHECK(r.message.find((site.dropins() / "50-agent.yaml").string() + ":") != std::string::npos);
        CHECK(r.message.find("'10.60.0.5' — not reachable from 'edge1' over its fleets") != std::string::npos);
        CHECK_FALSE(fs::exists(site.dropin()));
    }
    SECTION("an existing drop-in keeps its bytes") {
        REQUIRE(agent.add_forward(forward(kSeedForward)).status == Status::ok);
        const std::string before = slurp(site.dropin());
        const auto inode = fs::status(site.dropin()).permissions();
        // A port the main file forwards already, an id that is not a name, a bad URL.
        CHECK(agent.add_forward(forward(R"({"forward_id": "dup", "public_port": 2222, "target_ip": "10.50.0.9"})")).status ==
              Status::invalid);
        CHECK(agent.add_route(route(R"({"route_id": "x\"\n  - evil: 1", "hostname": "a.example.com", "target_url": "http://10.50.0.5/"})"))
                  .status == Status::invalid);
        AgentResult bad = agent.add_route(route(R"({"route_id": "r", "hostname": "a.example.com", "target_url": "ftp://10.50.0.5/"})"));
        CHECK(bad.status == Status::invalid);
        CHECK(bad.message.find("expected a URL like http://NODE:PORT/") != std::string::npos);
        CHECK(slurp(site.dropin()) == before);
        CHECK(fs::status(site.dropin()).permissions() == inode);
        CHECK(std::get<AgentEntries>(agent.entries()).forwards == std::vector<AgentForward>{forward(kSeedForward)});
    }
    SECTION("another drop-in takes part in the validation and is named as itself") {
        fs::create_directories(site.dropins());
        std::ofstream(site.dropins() / "10-other.yaml") << "forwards:\n  - { name: other, node: edge1, port: 22015, to: vm-123 }\n";
        AgentResult r = agent.add_forward(forward(kSeedForward));
        CHECK(r.status == Status::invalid);
        INFO(r.message);
        CHECK(r.message.find("already forwarded by forwards[1]") != std::string::npos);
        CHECK(r.message.find("wgf-agent.") == std::string::npos);  // no temporary path
        CHECK_FALSE(fs::exists(site.dropin()));
    }
}

TEST_CASE("agent: ids replace, delete, and are unknown where the drop-in does not hold them", "[serve][agent]") {
    Site site;
    auto agent = site.agent();
    REQUIRE(agent.add_forward(forward(kSeedForward)).status == Status::ok);
    AgentForward moved = forward(R"({"forward_id": "vm-123-ssh", "public_port": 22016, "target_ip": "10.50.0.124", "target_port": 22})");
    AgentResult again = agent.add_forward(moved);
    CHECK(again.status == Status::ok);
    CHECK(again.replaced);
    CHECK(std::get<AgentEntries>(agent.entries()).forwards == std::vector<AgentForward>{moved});

    const std::string before = slurp(site.dropin());
    CHECK(agent.delete_forward("nosuch").status == Status::not_found);
    CHECK(agent.delete_forward("main-ssh").status == Status::not_found);  // the main file's, not the agent's
    CHECK(agent.delete_route("vm-123-ssh").status == Status::not_found);  // a forward's id is not a route's
    CHECK(slurp(site.dropin()) == before);

    REQUIRE(agent.add_route(route(kSeedRoute)).status == Status::ok);
    CHECK(agent.delete_forward("vm-123-ssh").status == Status::ok);
    auto held = std::get<AgentEntries>(agent.entries());
    CHECK(held.forwards.empty());
    CHECK(held.routes.size() == 1);
    CHECK(agent.delete_route("vm-123").status == Status::ok);
    CHECK(std::get<AgentEntries>(agent.entries()) == AgentEntries{});
    // An empty drop-in still loads.
    CHECK(inputs::load(site.load())->fleet);
}

TEST_CASE("agent: a file at the drop-in's path without the marker is not ours", "[serve][agent]") {
    Site site;
    fs::create_directories(site.dropins());
    std::ofstream(site.dropin()) << "forwards: []\n";
    auto agent = site.agent();
    AgentResult r = agent.add_forward(forward(kSeedForward));
    CHECK(r.status == Status::error);
    CHECK(r.message.find("does not start with wg-fleet's marker line") != std::string::npos);
    CHECK(slurp(site.dropin()) == "forwards: []\n");
}

TEST_CASE("agent: the agent's state.json imports into the drop-in", "[serve][agent][import]") {
    Site site;
    // Keyed by id, as the agent kept its routes and forwards.
    const std::string state = R"({
  "routes": {
    "vm-123": {"route_id": "vm-123", "hostname": "vm-123.service.com", "target_url": "http://10.50.0.123:8080",
               "entrypoint": "websecure", "certresolver": "dnsresolver"},
    "vm-124": {"hostname": "api.service.com", "target_url": "http://10.50.0.124:3000/api", "entrypoint": "websecure"}
  },
  "forwards": {
    "vm-123-ssh": {"forward_id": "vm-123-ssh", "public_port": 22015, "target_ip": "10.50.0.123", "target_port": 32215, "proto": "tcp"},
    "vm-124-game": {"public_port": 27015, "target_ip": "10.50.0.124", "target_port": 27015, "proto": "udp"}
  }
})";
    auto parsed = serve::entries_from_state_json(state);
    REQUIRE(std::holds_alternative<AgentEntries>(parsed));
    const auto& e = std::get<AgentEntries>(parsed);
    REQUIRE(e.routes.size() == 2);
    CHECK(e.routes[1].route_id == "vm-124");  // the key is the id
    REQUIRE(e.forwards.size() == 2);
    CHECK(e.forwards[1].forward_id == "vm-124-game");
    CHECK(e.forwards[1].proto == "udp");
    // The list form reads the same.
    auto listed = serve::entries_from_state_json(R"({"http_routes": [)" + std::string(kSeedRoute) + R"(], "tcp_forwards": [)" +
                                                 std::string(kSeedForward) + "]}");
    REQUIRE(std::holds_alternative<AgentEntries>(listed));
    CHECK(std::get<AgentEntries>(listed).routes == std::vector<AgentRoute>{route(kSeedRoute)});
    CHECK(std::get<AgentEntries>(listed).forwards == std::vector<AgentForward>{forward(kSeedForward)});
    auto broken = serve::entries_from_state_json(R"({"forwards": {"x": {"public_port": 0, "target_ip": "10.50.0.5"}}})");
    REQUIRE(std::holds_alternative<std::string>(broken));
    CHECK(std::get<std::string>(broken) == "forwards.x: public_port: expected a port 1..65535, got 0");

    const fs::path file = site.dir / "state.json";
    std::ofstream(file) << state;
    auto agent = site.agent();
    AgentResult r = serve::import_edge_state(agent, file.string());
    INFO(r.message);
    REQUIRE(r.status == Status::ok);
    CHECK(std::get<AgentEntries>(agent.entries()) == e);
    auto l = inputs::load(site.load());
    REQUIRE(l->fleet);
    model::HostState hs = plan::render_host(*l->fleet, "edge1").state;
    CHECK(hs.firewall.count("dnat-vm-124-game-v4") == 1);
    CHECK(hs.files.count("/etc/traefik/dynamic/vm-124.yml") == 1);
    // Importing twice changes nothing.
    const std::string before = slurp(site.dropin());
    REQUIRE(serve::import_edge_state(agent, file.string()).status == Status::ok);
    CHECK(slurp(site.dropin()) == before);
}

TEST_CASE("agent: the drop-in's text: marker first, every string double-quoted", "[serve][agent]") {
    AgentEntries e{.routes = {route(kSeedRoute)}, .forwards = {forward(kSeedForward)}};
    e.routes[0].target_url = "a\"b\\c\nd";
    CHECK(serve::render_dropin(e, "edge1") ==
          "# Managed by wg-fleet: edits are overwritten.\n"
          "# The edge agent API's HTTP routes and forwards (wg-fleet serve); change them through the API.\n"
          "http_routes:\n"
          "  - name: \"vm-123\"\n"
          "    node: \"edge1\"\n"
          "    host: \"vm-123.service.com\"\n"
          "    to: \"a\\\"b\\\\c\\x0ad\"\n"
          "    entrypoint: \"websecure\"\n"
          "    certresolver: \"dnsresolver\"\n"
          "forwards:\n"
          "  - name: \"vm-123-ssh\"\n"
          "    node: \"edge1\"\n"
          "    proto: \"tcp\"\n"
          "    port: 22015\n"
          "    to: \"10.50.0.123\"\n"
          "    to_port: 32215\n");
    // What YAML reads back is the string as sent.
    auto back = serve::parse_dropin(serve::render_dropin(e, "edge1"), "50-agent.yaml");
    REQUIRE(std::holds_alternative<AgentEntries>(back));
    CHECK(std::get<AgentEntries>(back).routes[0].target_url == "a\"b\\c\nd");
    CHECK(serve::render_dropin({}, "edge1").find("http_routes: []\nforwards: []\n") != std::string::npos);
}
