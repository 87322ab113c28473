// A peer's health, defined once: `status`, its metrics and anything else that judges a peer use
// this verdict, so they cannot disagree about what "ok" means.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wgf::plan {

enum class Health {
    ok,       // a handshake at most kHealthyHandshakeAge seconds ago
    stale,    // older, although keepalives should have kept it fresh: something is wrong
    idle,     // older, with no keepalive: normal for a peer that has sent nothing lately
    never,    // no handshake since the device was configured
    pending,  // no public key yet: the member cannot be configured
};

inline constexpr std::array kHealthStates{Health::ok, Health::stale, Health::idle, Health::never, Health::pending};

// WireGuard rekeys a session at most every REKEY_AFTER_TIME (120 s) while traffic flows, and
// keepalives cause traffic: a handshake older than 180 s means no session was renewed.
inline constexpr int64_t kHealthyHandshakeAge = 180;

struct PeerFacts {
    bool key_known = true;       // false for a member whose public key is not published yet
    int64_t last_handshake = 0;  // seconds since the epoch; 0 = never
    uint16_t keepalive = 0;      // the persistent keepalive configured for the peer, seconds
};

Health health(const PeerFacts& peer, int64_t now);
std::string_view to_string(Health h);
std::optional<Health> parse_health(std::string_view name);

}  // namespace wgf::plan
