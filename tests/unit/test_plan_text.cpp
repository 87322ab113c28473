// The plan as an operator reads it: one plan with an operation of every resource, printed with
// colours off and compared with tests/golden/plan/plan_text.expected (names of removed peers,
// old -> new of each changed field, a managed file's unified diff, a secret file's size only);
// colours on exactly when asked; --color's decision against NO_COLOR and the terminal; and
// plan --json's version-1 fields, read back as JSON. The same texts on a real node are checked
// by tests/e2e/plan_e2e.sh.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../linux_unit/temp_dir.hpp"
#include "cli/plan_text.hpp"

using namespace wgf;
using test::slurp;

namespace {

model::Key key(uint8_t n) {
    model::Key k;
    k.bytes.fill(n);
    return k;
}
model::Prefix pfx(const char* s) { return *model::Prefix::parse(s); }
model::Endpoint ep(const char* s) { return *model::Endpoint::parse(s); }

// One operation of every resource, as the diff would order them.
plan::Plan sample_plan() {
    plan::Plan p;
    p.ops.emplace_back(plan::OpCreateDevice{.ifname = "mesh", .fleet = "acme"});
    p.ops.emplace_back(plan::OpSetListenPort{.ifname = "mesh", .port = 51821, .old = 51820, .fresh = false});
    p.ops.emplace_back(plan::OpSetMtu{.ifname = "mesh", .mtu = 1380, .old = 1420});
    model::WgPeer carol{.public_key = key(3), .endpoint = ep("192.0.2.3:51820"), .allowed_ips = {pfx("fd51::3/128")}, .keepalive = 25};
    p.ops.emplace_back(plan::OpRemovePeer{.ifname = "mesh", .public_key = key(2), .name = "bob"});
    p.ops.emplace_back(plan::OpRemovePeer{.ifname = "mesh", .public_key = key(9), .foreign = true});
    p.ops.emplace_back(plan::OpUpdatePeer{.ifname = "mesh",
                                          .public_key = key(1),
                                          .name = "alice",
                                          .endpoint = ep("192.0.2.10:51820"),
                                          .old_endpoint = ep("192.0.2.1:51820"),
                                          .keepalive = 15,
                                          .old_keepalive = 25,
                                          .allowed_ips = model::PrefixSet{pfx("fd51::1/128"), pfx("10.1.0.0/24")},
                                          .added = {pfx("10.1.0.0/24")},
                                          .removed = {pfx("10.9.0.0/24")}});
    p.ops.emplace_back(plan::OpAddPeer{.ifname = "mesh", .peer = carol, .name = "carol"});
    p.ops.emplace_back(plan::OpDelAddress{.ifname = "mesh", .addr = pfx("fd51::9/64")});
    p.ops.emplace_back(plan::OpAddAddress{.ifname = "mesh", .addr = pfx("fd51::1/64")});
    p.ops.emplace_back(plan::OpDelRoute{.route = {.dst = pfx("10.9.0.0/24"), .dev = "mesh"}});
    p.ops.emplace_back(plan::OpAddRoute{.route = {.dst = pfx("10.1.0.0/24"), .dev = "mesh", .src = model::IpAddr::parse("10.0.0.1")}});
    p.ops.emplace_back(plan::OpSetSysctl{.key = "net/ipv4/ip_forward", .value = "1", .old = "0"});
    p.ops.emplace_back(plan::OpAddRule{.rule = {.id = "accept-acme", .kind = model::FwKind::accept_udp, .port = 51821}});
    p.ops.emplace_back(plan::OpWriteFile{
        .file = {.path = "/etc/hosts.wg", .content = "# Managed by wg-fleet\nfd51::1 alice\nfd51::3 carol\nfd51::4 dave\n", .mode = 0644},
        .exists = true,
        .changed_lines = 2,
        .old_content = "# Managed by wg-fleet\nfd51::1 alice\nfd51::2 bob\nfd51::4 dave\n"});
    p.ops.emplace_back(plan::OpWriteFile{.file = {.path = "/etc/wg/secret.conf", .content = "PrivateKey = not shown\n", .mode = 0600}});
    p.ops.emplace_back(plan::OpRemoveFile{.path = "/etc/old.wg"});
    p.pending = {"erin in fleet acme"};
    p.conflicts = {"! conflict: /etc/hosts.other exists and was not written by wg-fleet; left as is"};
    return p;
}


}  // namespace

TEST_CASE("plan text: grouped by resource, names, old -> new and file diffs, as the golden file has them", "[plan_text]") {
    const std::filesystem::path golden = std::filesystem::path(WGF_SOURCE_DIR) / "tests/golden/plan/plan_text.expected";
    const std::string text = output::plan_text(sample_plan(), {.color = false});
    // WGF_UPDATE_GOLDEN=1 rewrites the file; its diff is then reviewed like code.
    if (const char* u = std::getenv("WGF_UPDATE_GOLDEN"); u && std::string_view(u) == "1") std::ofstream(golden) << text;
    CHECK(text == slurp(golden));
    CHECK(text.find('\033') == std::string::npos);
    // A secret file's content never shows, not even in part.
    CHECK(text.find("not shown") == std::string::npos);
    CHECK(text.find("(secret, 23 bytes)") != std::string::npos);
}

TEST_CASE("plan text: colours exactly when asked, the terraform way", "[plan_text]") {
    const std::string text = output::plan_text(sample_plan(), {.color = true});
    CHECK(text.find("\033[32m+\033[0m peer carol") != std::string::npos);
    CHECK(text.find("\033[31m-\033[0m peer bob") != std::string::npos);
    CHECK(text.find("\033[33m~\033[0m peer alice") != std::string::npos);
    CHECK(text.find("\033[31m-fd51::2 bob\033[0m") != std::string::npos);
    CHECK(text.find("\033[32m+fd51::3 carol\033[0m") != std::string::npos);
    // Without the escapes it is the plain text.
    std::string stripped;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\033') {
            i = text.find('m', i);
            continue;
        }
        stripped += text[i];
    }
    CHECK(stripped == output::plan_text(sample_plan(), {.color = false}));
}

TEST_CASE("plan text: --color=auto colours a terminal unless NO_COLOR or TERM=dumb, always and never win", "[plan_text]") {
    using C = output::Color;
    CHECK(output::color_enabled(C::auto_, true, nullptr, "xterm"));
    CHECK_FALSE(output::color_enabled(C::auto_, false, nullptr, "xterm"));
    CHECK_FALSE(output::color_enabled(C::auto_, true, "1", "xterm"));
    CHECK(output::color_enabled(C::auto_, true, "", "xterm"));  // no-color.org: an empty NO_COLOR is unset
    CHECK_FALSE(output::color_enabled(C::auto_, true, nullptr, "dumb"));
    CHECK(output::color_enabled(C::always, false, "1", "dumb"));
    CHECK_FALSE(output::color_enabled(C::never, true, nullptr, "xterm"));
}

TEST_CASE("plan --json: version 1, every op with its resource, names and old/new per field", "[plan_text]") {
    const plan::Plan p = sample_plan();
    const auto j = nlohmann::json::parse(output::plan_json("hub", p, {"a warning"}));
    CHECK(j["version"] == 1);
    CHECK(j["node"] == "hub");
    REQUIRE(j["ops"].size() == p.ops.size());
    for (const auto& o : j["ops"])
        for (const char* field : {"kind", "mark", "disrupts", "line", "resource", "interface", "changes"}) CHECK(o.contains(field));
    const auto& removed = j["ops"][3];
    CHECK(removed["kind"] == "remove_peer");
    CHECK(removed["peer"]["name"] == "bob");
    CHECK(removed["peer"]["public_key"] == key(2).base64());
    CHECK(j["ops"][4]["peer"]["name"].is_null());
    CHECK(j["ops"][4]["peer"]["foreign"] == true);
    const auto& alice = j["ops"][5]["changes"];
    CHECK(alice["endpoint"] == nlohmann::json{{"old", "192.0.2.1:51820"}, {"new", "192.0.2.10:51820"}});
    CHECK(alice["keepalive"] == nlohmann::json{{"old", 25}, {"new", 15}});
    CHECK(alice["allowed_ips"]["added"] == nlohmann::json{"10.1.0.0/24"});
    CHECK(alice["allowed_ips"]["removed"] == nlohmann::json{"10.9.0.0/24"});
    CHECK(j["ops"][1]["changes"]["listen_port"] == nlohmann::json{{"old", 51820}, {"new", 51821}});
    CHECK(j["ops"][2]["changes"]["mtu"] == nlohmann::json{{"old", 1420}, {"new", 1380}});
    CHECK(j["ops"][11]["changes"]["value"] == nlohmann::json{{"old", "0"}, {"new", "1"}});
    CHECK(j["ops"][10]["route"]["src"] == "10.0.0.1");
    const auto& hosts = j["ops"][13]["file"];
    CHECK(hosts["secret"] == false);
    CHECK(hosts["diff"].get<std::string>().find("\n-fd51::2 bob\n+fd51::3 carol\n") != std::string::npos);
    const auto& secret = j["ops"][14]["file"];
    CHECK(secret["secret"] == true);
    CHECK(secret["diff"].is_null());
    CHECK(j.dump().find("not shown") == std::string::npos);
    CHECK(j["counts"] == nlohmann::json{{"add", 6}, {"change", 5}, {"remove", 5}, {"conflicts", 1}});
    CHECK(j["warnings"] == nlohmann::json{"a warning"});
    CHECK(j["pending"] == nlohmann::json{"erin in fleet acme"});
}

TEST_CASE("plan text: a device the plan creates shows the MTU and fleet it gets, not a 0 before them", "[plan_text]") {
    CHECK(plan::describe(plan::OpSetMtu{.ifname = "mesh", .mtu = 1420, .old = 0}) == "~ link mesh: mtu 1420");
    CHECK(plan::describe(plan::OpSetMtu{.ifname = "mesh", .mtu = 1380, .old = 1420}) == "~ link mesh: mtu 1420 -> 1380");
    CHECK(plan::describe(plan::OpCreateDevice{.ifname = "mesh", .fleet = "home"}) == "+ device mesh (fleet home)");
    // A rollback makes a device again that the file no longer names.
    CHECK(plan::describe(plan::OpCreateDevice{.ifname = "mesh", .fleet = ""}) == "+ device mesh");
}
