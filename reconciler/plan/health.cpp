#include "plan/health.hpp"

namespace wgf::plan {

Health health(const PeerFacts& peer, int64_t now) {
    if (!peer.key_known) return Health::pending;
    if (peer.last_handshake <= 0) return Health::never;
    // A clock stepped back makes a handshake look as if it came from the future: still recent.
    if (now - peer.last_handshake <= kHealthyHandshakeAge) return Health::ok;
    return peer.keepalive > 0 ? Health::stale : Health::idle;
}

std::string_view to_string(Health h) {
    switch (h) {
        case Health::ok: return "ok";
        case Health::stale: return "stale";
        case Health::idle: return "idle";
        case Health::never: return "never";
        case Health::pending: return "pending";
    }
    return "?";
}

std::optional<Health> parse_health(std::string_view name) {
    for (Health h : kHealthStates)
        if (to_string(h) == name) return h;
    return std::nullopt;
}

}  // namespace wgf::plan
