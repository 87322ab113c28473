// Key rotation's pure part: the published next key's text and its refusals, switch times, the
// switch decision, a peer's key switched in the desired state, key_max_age and its warning.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "plan/rotation.hpp"

using namespace wgf;

namespace {

model::Key rot_key(uint8_t b) {
    model::Key k;
    k.bytes.fill(b);
    return k;
}

}  // namespace

TEST_CASE("rotation: a next key's text round-trips", "[rotation]") {
    const plan::NextKey next{.key = rot_key(7), .switch_at = 1796092200};  // 2026-12-01T02:30:00Z
    const std::string text = plan::format_next_key(next);
    CHECK(text == "public_key: " + rot_key(7).base64() + "\nswitch_at: 2026-12-01T02:30:00Z\n");
    auto back = plan::parse_next_key(text);
    INFO(back.error);
    REQUIRE(back.next);
    CHECK(*back.next == next);
    // The last newline is optional, a CR before a newline is tolerated.
    CHECK(plan::parse_next_key(text.substr(0, text.size() - 1)).next == next);
    CHECK(plan::parse_next_key("public_key: " + rot_key(7).base64() + "\r\nswitch_at: 2026-12-01T02:30:00Z\r\n").next == next);
}

TEST_CASE("rotation: a malformed next key is refused with its line and column, never showing the key", "[rotation]") {
    const std::string key = rot_key(9).base64();
    struct Case {
        std::string text, error;
    };
    const std::vector<Case> cases{
        {"", "line 1, column 1: expected the line \"public_key: ...\""},
        {"public_key: " + key + "\n", "line 2, column 1: expected the line \"switch_at: ...\""},
        {"switch_at: 2026-12-01T02:30:00Z\npublic_key: " + key + "\n",
         "line 1, column 1: expected \"public_key: \" at the start of the line"},
        {"public_key: " + key.substr(0, 40) + "\nswitch_at: 2026-12-01T02:30:00Z\n",
         "line 1, column 13: not a base64 WireGuard public key (content not shown)"},
        {"public_key: " + key + "\nswitch_at: tomorrow\n",
         "line 2, column 12: 'tomorrow' is not an RFC 3339 time such as 2026-12-01T02:30:00Z"},
        {"public_key: " + key + "\nswitch_at: 2026-02-30T02:30:00Z\n",
         "line 2, column 12: '2026-02-30T02:30:00Z' is not an RFC 3339 time such as 2026-12-01T02:30:00Z"},
        {"public_key: " + key + "\nswitch_at: 2026-12-01T02:30:00Z\nextra: 1\n",
         "line 3, column 1: expected the end of the file after switch_at"},
        {"public_key:" + key + "\nswitch_at: 2026-12-01T02:30:00Z\n",
         "line 1, column 1: expected \"public_key: \" at the start of the line"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = plan::parse_next_key(c.text);
        CHECK_FALSE(r.next);
        CHECK(r.error == c.error);
        CHECK(r.error.find(key.substr(0, 40)) == std::string::npos);
    }
}

TEST_CASE("rotation: RFC 3339 times and relative switch times", "[rotation]") {
    CHECK(plan::parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    CHECK(plan::parse_rfc3339("2026-12-01T02:30:00Z") == 1796092200);
    CHECK(plan::parse_rfc3339("2026-12-01T04:30:00+02:00") == 1796092200);
    CHECK(plan::parse_rfc3339("2026-12-01T02:30:00.750Z") == 1796092200);
    CHECK(plan::parse_rfc3339("2024-02-29T00:00:00Z").has_value());
    CHECK_FALSE(plan::parse_rfc3339("2025-02-29T00:00:00Z"));
    CHECK_FALSE(plan::parse_rfc3339("2026-12-01 02:30:00Z"));
    CHECK_FALSE(plan::parse_rfc3339("2026-12-01T02:30:00"));
    CHECK_FALSE(plan::parse_rfc3339("2026-12-01T02:30:00Zjunk"));
    CHECK(plan::format_rfc3339(1796092200) == "2026-12-01T02:30:00Z");
    std::string why;
    CHECK(plan::parse_switch_time("+90s", 1000, &why) == 1090);
    CHECK(plan::parse_switch_time("+2h", 1000, &why) == 1000 + 7200);
    CHECK(plan::parse_switch_time("2026-12-01T02:30:00Z", 1000, &why) == 1796092200);
    CHECK_FALSE(plan::parse_switch_time("+soon", 1000, &why));
    CHECK(why == "'+soon' — a relative time is + and a duration, like +90s, +10m or +2h (units d, h, m, s)");
    CHECK_FALSE(plan::parse_switch_time("noon", 1000, &why));
    CHECK(why == "'noon' — not a time: use RFC 3339 (2026-12-01T02:30:00Z) or +DURATION (+90s)");
}

TEST_CASE("rotation: a switch is due at its time and after, not before", "[rotation]") {
    CHECK_FALSE(plan::switch_due(100, 99));
    CHECK(plan::switch_due(100, 100));
    CHECK(plan::switch_due(100, 5000));
}

TEST_CASE("rotation: a peer's key is switched with everything else of its entry kept", "[rotation]") {
    model::HostState hs;
    model::Labels labels;
    auto& w = hs.interfaces["wg0"];
    w.name = "wg0";
    model::WgPeer a{.public_key = rot_key(1), .endpoint = std::nullopt, .allowed_ips = {}, .keepalive = 25};
    a.allowed_ips.insert(test::prefix("fd00::1/128"));
    w.peers.emplace(a.public_key, a);
    model::WgPeer b{.public_key = rot_key(2), .endpoint = std::nullopt, .allowed_ips = {}, .keepalive = 0};
    w.peers.emplace(b.public_key, b);
    auto& l = labels.interfaces["wg0"];
    l.peer_names = {{rot_key(1), "alice"}, {rot_key(2), "bob"}};

    std::string why;
    auto sw = plan::switch_peer_key(hs, labels, "wg0", "alice", rot_key(3), &why);
    INFO(why);
    REQUIRE(sw);
    CHECK(sw->old_key == rot_key(1));
    CHECK(sw->new_key == rot_key(3));
    CHECK_FALSE(w.peers.count(rot_key(1)));
    REQUIRE(w.peers.count(rot_key(3)));
    const auto& moved = w.peers.at(rot_key(3));
    CHECK(moved.public_key == rot_key(3));
    CHECK(moved.allowed_ips == a.allowed_ips);
    CHECK(moved.keepalive == 25);
    CHECK(labels.peer_name("wg0", rot_key(3)) == "alice");
    CHECK(w.peers.at(rot_key(2)) == b);  // nobody else touched

    CHECK_FALSE(plan::switch_peer_key(hs, labels, "wg0", "alice", rot_key(3), &why));
    CHECK(why == "it has that key already");
    CHECK_FALSE(plan::switch_peer_key(hs, labels, "wg0", "alice", rot_key(2), &why));
    CHECK(why == "another peer on wg0 has that key");
    CHECK_FALSE(plan::switch_peer_key(hs, labels, "wg0", "carol", rot_key(4), &why));
    CHECK(why == "carol is not a peer on wg0");
}

TEST_CASE("rotation: key_max_age parses at the top and per fleet, with located errors", "[rotation][parse]") {
    auto l = test::parse_only("key_max_age: 90d\nfleets:\n  mesh:\n    key_max_age: 30d\n    controllers:\n      s1: {}\n");
    INFO(l->text());
    CHECK_FALSE(l->diags.has_errors());
    CHECK(l->cfg().key_max_age == 90u * 86400);
    CHECK(l->cfg().fleets.at("mesh").key_max_age == 30u * 86400);

    auto bad = test::parse_only("key_max_age: 90 days\nfleets:\n  mesh:\n    key_max_age: 0s\n    controllers:\n      s1: {}\n");
    auto top = bad->at("key_max_age");
    REQUIRE(top.size() == 1);
    CHECK(top[0].loc.line == 1);
    CHECK(top[0].loc.col == 14);
    CHECK(top[0].message == "'90 days' — a duration is like 30s, 10m or 1h (units d, h, m, s)");
    auto fleet = bad->at("fleets.mesh.key_max_age");
    REQUIRE(fleet.size() == 1);
    CHECK(fleet[0].loc.line == 4);
    CHECK(fleet[0].message == "'0s' — must be at least 1s");
}

TEST_CASE("rotation: the key age warning comes once a key is older than key_max_age", "[rotation]") {
    const int64_t changed = 1796092200;
    CHECK_FALSE(plan::key_age_warning("mesh", "alice", changed, changed + 90 * 86400, 90 * 86400, "/k/mesh/alice.pub"));
    auto w = plan::key_age_warning("mesh", "alice", changed, changed + 91 * 86400, 90 * 86400, "/k/mesh/alice.pub");
    REQUIRE(w);
    CHECK(*w ==
          "the key of alice in fleet mesh is 91d old (/k/mesh/alice.pub last changed 2026-12-01T02:30:00Z); key_max_age is 90d: run "
          "`wg-fleet rotate --fleet mesh` on alice");
    // A clock behind the file: no age, no warning.
    CHECK_FALSE(plan::key_age_warning("mesh", "alice", changed, changed - 10, 1, "/k"));
}
