// Which enrolled clients are gone: pure, so the rule is tested without a device or a clock.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "store/store.hpp"

namespace wgf::serve {

// The moment a client was last known alive: its last handshake, or, when it never had one, its
// registration or last ping (last_seen covers both).
int64_t last_alive(const Client& c, int64_t last_handshake);

// The clients (of one fleet) whose last_alive is more than `timeout` seconds before `now`.
// `handshakes`: the fleet device's peers by key, seconds since the epoch, 0 or absent for never.
std::vector<model::Key> clients_to_prune(const std::vector<Client>& clients, const std::map<model::Key, int64_t>& handshakes, int64_t now,
                                         uint64_t timeout);

}  // namespace wgf::serve
