// The output writers without the command line: GitHub's escapes (checked against the rules of
// GitHub's toolkit, restated here), paths relative to the CI workspace, GitLab Code Quality's
// fields, and Prometheus' exposition format with escaped label values. The command line's
// formats on a real fleet file are checked by tests/e2e/ci_formats.sh.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/output.hpp"

namespace o = wgf::output;

namespace {

// A diagnostic with every character GitHub's commands treat specially.
wgf::config::Diagnostics one_error(wgf::config::Sources& sources) {
    uint32_t file = sources.add("ci/sub/fleet.yaml", "a: 1\nb: 2\n");
    wgf::config::Diagnostics d;
    d.error({.file = file, .line = 2, .col = 4}, "fleets.a,b:c", "100% wrong: 'x,y'\r\nsecond line");
    d.warning({.file = file, .line = 1, .col = 1}, "a", "a warning");
    return d;
}

}  // namespace

TEST_CASE("github: data escapes % CR LF, properties also : and ,", "[output]") {
    CHECK(o::github_escape_data("100% a:b,c\r\nd") == "100%25 a:b,c%0D%0Ad");
    CHECK(o::github_escape_property("100% a:b,c\r\nd") == "100%25 a%3Ab%2Cc%0D%0Ad");
    // % first: an escape is never escaped again.
    CHECK(o::github_escape_property("%3A") == "%253A");
}

TEST_CASE("github: one annotation per diagnostic, with file, line, col and title", "[output]") {
    wgf::config::Sources sources;
    auto d = one_error(sources);
    const std::string out = o::github_annotations(o::findings_of(d, sources), "", "/work");
    CHECK(out ==
          "::warning file=ci/sub/fleet.yaml,line=1,col=1,title=a::a warning\n"
          "::error file=ci/sub/fleet.yaml,line=2,col=4,title=fleets.a%2Cb%3Ac::100%25 wrong: 'x,y'%0D%0Asecond line\n");
}

TEST_CASE("ci_path: relative to the workspace when the file is under it, else as given", "[output]") {
    CHECK(o::ci_path("ci/fleet.yaml", "", "/work") == "ci/fleet.yaml");
    CHECK(o::ci_path("/repo/ci/fleet.yaml", "/repo", "/elsewhere") == "ci/fleet.yaml");
    CHECK(o::ci_path("/repo/ci/fleet.yaml", "/repo/", "/elsewhere") == "ci/fleet.yaml");
    CHECK(o::ci_path("ci/fleet.yaml", "/repo", "/repo") == "ci/fleet.yaml");
    CHECK(o::ci_path("fleet.yaml", "/repo", "/repo/ci") == "ci/fleet.yaml");
    CHECK(o::ci_path("../fleet.yaml", "/repo", "/repo/ci") == "fleet.yaml");
    CHECK(o::ci_path("/other/fleet.yaml", "/repo", "/repo") == "/other/fleet.yaml");
    CHECK(o::ci_path("../x.yaml", "/repo", "/repo") == "../x.yaml");
    // A sibling whose name starts like the workspace is not under it.
    CHECK(o::ci_path("/repo2/fleet.yaml", "/repo", "/") == "/repo2/fleet.yaml");
}

TEST_CASE("gitlab: Code Quality issues with severity, a stable fingerprint and the line", "[output]") {
    wgf::config::Sources sources;
    auto d = one_error(sources);
    auto report = nlohmann::json::parse(o::gitlab_report(o::findings_of(d, sources), "fleet.yaml", "/work/ci", "/work"));
    REQUIRE(report.is_array());
    REQUIRE(report.size() == 2);
    const auto& e = report[1];
    CHECK(e["severity"] == "major");
    CHECK(report[0]["severity"] == "minor");
    CHECK(e["location"]["path"] == "sub/fleet.yaml");
    CHECK(e["location"]["lines"]["begin"] == 2);
    CHECK(e["description"] == "fleets.a,b:c: 100% wrong: 'x,y'\r\nsecond line");
    CHECK(e["check_name"] == "wg-fleet/config");
    CHECK(e["fingerprint"].get<std::string>().size() == 32);
    CHECK(e["fingerprint"] != report[0]["fingerprint"]);
    // The same finding gives the same fingerprint on another run, also from another directory.
    auto again = nlohmann::json::parse(o::gitlab_report(o::findings_of(d, sources), "fleet.yaml", "/work/ci", "/work"));
    CHECK(again[1]["fingerprint"] == e["fingerprint"]);
    // A finding without a file or line lands on the fallback file's first line.
    auto drift = nlohmann::json::parse(
        o::gitlab_report({{.level = o::Finding::Level::notice, .check = "wg-fleet/drift", .title = "t", .message = "m"}},
                         "/work/ci/fleet.yaml", "/work", "/"));
    CHECK(drift[0]["location"]["path"] == "ci/fleet.yaml");
    CHECK(drift[0]["location"]["lines"]["begin"] == 1);
    CHECK(drift[0]["severity"] == "info");
}

TEST_CASE("check json: version 1 and every diagnostic's six fields", "[output]") {
    wgf::config::Sources sources;
    auto d = one_error(sources);
    d.error({}, "", "no location");
    auto j = nlohmann::json::parse(o::diagnostics_json(d, sources));
    CHECK(j["version"] == 1);
    REQUIRE(j["diagnostics"].size() == 3);
    for (const auto& x : j["diagnostics"]) CHECK(x.size() == 6);
    // Sorted by file and position; a diagnostic without a file comes last.
    const auto& e = j["diagnostics"][1];
    CHECK(e["file"] == "ci/sub/fleet.yaml");
    CHECK(e["line"] == 2);
    CHECK(e["column"] == 4);
    CHECK(e["path"] == "fleets.a,b:c");
    CHECK(e["severity"] == "error");
    CHECK(e["message"] == "100% wrong: 'x,y'\r\nsecond line");
    const auto& nowhere = j["diagnostics"][2];
    CHECK(nowhere["file"].is_null());
    CHECK(nowhere["line"].is_null());
    CHECK(nowhere["message"] == "no location");
}

TEST_CASE("formats: names parse, and nothing else does", "[output]") {
    for (auto f : {o::Format::text, o::Format::json, o::Format::github, o::Format::gitlab, o::Format::prometheus})
        CHECK(o::parse_format(o::to_string(f)) == f);
    CHECK_FALSE(o::parse_format("JSON"));
    CHECK_FALSE(o::parse_format(""));
}

TEST_CASE("prometheus: label values escape backslash, quote and newline", "[output]") {
    CHECK(o::prometheus_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    o::NodeMetrics m{.node = "hub",
                     .peers = {{.fleet = "mesh",
                                .interface = "wg-mesh",
                                .name = "we\"ird\\name\n",
                                .public_key = "K=",
                                .last_handshake = 1700000000,
                                .rx_bytes = 10,
                                .tx_bytes = 20,
                                .health = wgf::plan::Health::stale},
                               {.fleet = "mesh", .interface = "wg-mesh", .name = "late", .health = wgf::plan::Health::pending}},
                     .drift_operations = 3};
    const std::string text = o::prometheus_text(m);
    const std::string labels = R"(fleet="mesh",interface="wg-mesh",peer="we\"ird\\name\n",public_key="K=")";
    CHECK_THAT(text, Catch::Contains("wgfleet_peer_last_handshake_timestamp_seconds{" + labels + "} 1700000000\n"));
    CHECK_THAT(text, Catch::Contains("wgfleet_peer_receive_bytes_total{" + labels + "} 10\n"));
    CHECK_THAT(text, Catch::Contains("wgfleet_peer_transmit_bytes_total{" + labels + "} 20\n"));
    CHECK_THAT(text, Catch::Contains("wgfleet_peer_health{" + labels + R"(,state="stale"} 1)" + "\n"));
    CHECK_THAT(text, Catch::Contains("wgfleet_peer_health{" + labels + R"(,state="ok"} 0)" + "\n"));
    CHECK_THAT(text,
               Catch::Contains(R"(wgfleet_peer_health{fleet="mesh",interface="wg-mesh",peer="late",public_key="",state="pending"} 1)"));
    // A pending member has no counters: it has no session to count.
    CHECK_THAT(text, !Catch::Contains(R"(wgfleet_peer_receive_bytes_total{fleet="mesh",interface="wg-mesh",peer="late")"));
    CHECK_THAT(text, Catch::Contains("wgfleet_drift_operations{node=\"hub\"} 3\n"));
    // No journal record, no apply metrics (rather than a made-up time).
    CHECK_THAT(text, !Catch::Contains("wgfleet_last_apply"));
    m.last_apply = o::LastApply{.time = 1700000100, .ok = false};
    CHECK_THAT(o::prometheus_text(m), Catch::Contains("wgfleet_last_apply_timestamp_seconds{node=\"hub\"} 1700000100\n"));
    CHECK_THAT(o::prometheus_text(m), Catch::Contains("wgfleet_last_apply_success{node=\"hub\"} 0\n"));
}

TEST_CASE("status: bytes in binary units, times as people say them", "[output][status]") {
    CHECK(o::human_bytes(0) == "0 B");
    CHECK(o::human_bytes(1023) == "1023 B");
    CHECK(o::human_bytes(1024) == "1.0 KiB");
    CHECK(o::human_bytes(1536) == "1.5 KiB");
    CHECK(o::human_bytes(10 * 1024) == "10 KiB");
    CHECK(o::human_bytes(uint64_t{5} << 30) == "5.0 GiB");
    CHECK(o::human_bytes(UINT64_MAX) == "16 EiB");
    CHECK(o::human_ago(1000, 0) == "never");
    CHECK(o::human_ago(1000, 988) == "12 s ago");
    CHECK(o::human_ago(1000, 1005) == "just now");
    CHECK(o::human_ago(10000, 10000 - 150) == "2 min ago");
    CHECK(o::human_ago(100000, 100000 - 3 * 3600) == "3 h ago");
    CHECK(o::human_ago(1000000, 1000000 - 4 * 86400) == "4 days ago");
}

TEST_CASE("status: a table per interface, pending members, drift and the summary line", "[output][status]") {
    const int64_t now = 100000;
    o::Status st{.node = "hub"};
    o::StatusInterface si{.interface = "wg-mesh", .fleet = "mesh", .up = true, .listen_port = 51820};
    si.peers.push_back({.name = "alice",
                        .public_key = "k1",
                        .allowed_ips = {"fd00::2/128", "10.0.0.2/32", "192.168.7.0/24"},
                        .endpoint = "192.0.2.7:51820",
                        .keepalive = 25,
                        .last_handshake = now - 30,
                        .rx_bytes = 2048,
                        .tx_bytes = 100,
                        .health = wgf::plan::Health::ok});
    si.peers.push_back({.name = "bob",
                        .public_key = "k2",
                        .allowed_ips = {"fd00::3/128"},
                        .keepalive = 25,
                        .last_handshake = now - 600,
                        .health = wgf::plan::Health::stale});
    si.peers.push_back({.name = "carol", .public_key = "k3", .allowed_ips = {"fd00::4/128"}, .health = wgf::plan::Health::idle});
    si.pending = {"dave"};
    st.interfaces.push_back(si);
    CHECK(o::status_text(st, now) ==
          "interface wg-mesh (fleet mesh): up, listening on 51820\n"
          "  PEER   HEALTH  ALLOWED IPS                 ENDPOINT         KEEPALIVE  HANDSHAKE   TRANSFER\n"
          "  alice  ok      fd00::2/128,10.0.0.2/32 +1  192.0.2.7:51820  25 s       30 s ago    rx 2.0 KiB, tx 100 B\n"
          "  bob    stale   fd00::3/128                 -                25 s       10 min ago  rx 0 B, tx 0 B\n"
          "  carol  idle    fd00::4/128                 -                -          never       rx 0 B, tx 0 B\n"
          "  dave pending: no public key yet\n"
          "2 of 3 peers healthy (1 pending); drift: none\n");
    auto sum = o::summarize(st);
    CHECK(sum.peers == 3);
    CHECK(sum.healthy == 2);
    CHECK(sum.pending == 1);
    CHECK_FALSE(sum.ok);
    st.interfaces[0].peers.erase(st.interfaces[0].peers.begin() + 1);  // bob gone: healthy
    CHECK(o::summarize(st).ok);
    st.drift = {"add peer x"};
    st.conflicts = {"! conflict: /etc/hosts"};
    CHECK_FALSE(o::summarize(st).ok);
    const std::string text = o::status_text(st, now);
    CHECK_THAT(
        text, Catch::EndsWith("drift (1 operation would converge it):\n  add peer x\n"
                              "2 of 2 peers healthy (1 pending); drift: 1 operation; 1 conflict keeps the node from matching the fleet\n"));
    CHECK_THAT(text, Catch::Contains("! conflict: /etc/hosts\n"));
}
