// The health verdict at its boundaries: exactly 180 s is still ok, 181 s is not; keepalive
// decides between stale and idle; no handshake is never; no key is pending whatever else holds.
#include <catch2/catch.hpp>

#include "plan/health.hpp"

using wgf::plan::Health;
using wgf::plan::health;

namespace {
constexpr int64_t kNow = 1'800'000'000;
}

TEST_CASE("health: a handshake at most 180 s ago is ok, older is stale with a keepalive and idle without", "[health]") {
    CHECK(health({.last_handshake = kNow, .keepalive = 0}, kNow) == Health::ok);
    CHECK(health({.last_handshake = kNow - 180, .keepalive = 0}, kNow) == Health::ok);
    CHECK(health({.last_handshake = kNow - 180, .keepalive = 25}, kNow) == Health::ok);
    CHECK(health({.last_handshake = kNow - 181, .keepalive = 25}, kNow) == Health::stale);
    CHECK(health({.last_handshake = kNow - 181, .keepalive = 0}, kNow) == Health::idle);
    CHECK(health({.last_handshake = 1, .keepalive = 1}, kNow) == Health::stale);
    CHECK(health({.last_handshake = 1, .keepalive = 0}, kNow) == Health::idle);
}

TEST_CASE("health: a handshake from the future (a clock stepped back) counts as recent", "[health]") {
    CHECK(health({.last_handshake = kNow + 3600, .keepalive = 25}, kNow) == Health::ok);
}

TEST_CASE("health: no handshake yet is never, with or without keepalive", "[health]") {
    CHECK(health({.last_handshake = 0, .keepalive = 0}, kNow) == Health::never);
    CHECK(health({.last_handshake = 0, .keepalive = 25}, kNow) == Health::never);
}

TEST_CASE("health: a member without a key is pending, whatever its handshake", "[health]") {
    CHECK(health({.key_known = false, .last_handshake = 0}, kNow) == Health::pending);
    CHECK(health({.key_known = false, .last_handshake = kNow}, kNow) == Health::pending);
}

TEST_CASE("health: every verdict has a name that parses back", "[health]") {
    for (Health h : wgf::plan::kHealthStates) CHECK(wgf::plan::parse_health(wgf::plan::to_string(h)) == h);
    CHECK(wgf::plan::to_string(Health::ok) == "ok");
    CHECK(wgf::plan::to_string(Health::stale) == "stale");
    CHECK(wgf::plan::to_string(Health::idle) == "idle");
    CHECK(wgf::plan::to_string(Health::never) == "never");
    CHECK(wgf::plan::to_string(Health::pending) == "pending");
    CHECK_FALSE(wgf::plan::parse_health("fine"));
}
