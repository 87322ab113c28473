// Key rotation (`wg-fleet rotate`), the pure part: the text of a published next key
// (<keys_dir>/<fleet>/<node>.next.pub), switch times (RFC 3339, or relative: +90s), the decision
// whether a switch is due, and the desired state with due switches applied (the member's peer
// entry keeps its allowed IPs, keepalive and endpoint; only its key changes). The files are read
// by inputs/rotation; the engine applies what is due.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/host_state.hpp"
#include "model/net.hpp"

namespace wgf::plan {

// A published next key is two lines: "public_key: BASE64" and "switch_at: RFC3339" (UTC, whole
// seconds), in that order, nothing else. At most this many bytes.
inline constexpr size_t kNextKeyMaxBytes = 256;

struct NextKey {
    model::Key key;
    int64_t switch_at = 0;  // seconds since the epoch

    auto operator<=>(const NextKey&) const = default;
};

// The file's text for a next key.
std::string format_next_key(const NextKey& next);
// Strict: on a malformed text, `error` is "line L, column C: what" and never shows the key's text.
struct NextKeyText {
    std::optional<NextKey> next;
    std::string error;
};
NextKeyText parse_next_key(std::string_view text);

// "2026-12-01T02:30:00Z" (also with a numeric offset, "+02:00", and fractions of a second, which
// are dropped). nullopt when it is not such a time.
std::optional<int64_t> parse_rfc3339(std::string_view text);
// UTC, whole seconds: "2026-12-01T02:30:00Z".
std::string format_rfc3339(int64_t t);
// rotate --at: RFC 3339, or "+DURATION" from now (+90s, +5m, +2h, +1d). `why` says what is wrong.
std::optional<int64_t> parse_switch_time(std::string_view text, int64_t now, std::string* why);

// Whether a switch at `switch_at` is due at `now` (seconds): at the switch time and after.
inline bool switch_due(int64_t switch_at, int64_t now) { return now >= switch_at; }

// Where the next private key waits for its switch: beside the key file.
std::string next_private_key_path(const std::string& key_file);
// <keys_dir>/<fleet>/<node>.next.pub
std::string next_key_path(const std::string& keys_dir, const std::string& fleet, const std::string& node);

// A peer's key replaced in the desired state of one interface: the entry keeps everything else.
struct PeerSwitch {
    std::string ifname;
    std::string node;
    model::Key old_key, new_key;

    auto operator<=>(const PeerSwitch&) const = default;
};

// Replaces the key of member `node`'s peer entry on `ifname` by `key` (allowed IPs, keepalive,
// endpoint and name kept). Returns the switch made; nullopt when the interface has no peer of
// that name, it has that key already, or another peer has it (`why` says which, when set).
std::optional<PeerSwitch> switch_peer_key(model::HostState& desired, model::Labels& labels, const std::string& ifname,
                                          const std::string& node, const model::Key& key, std::string* why = nullptr);

// The age warning of `check`: "key of NODE in fleet F is 120d old (SOURCE); key_max_age is 90d".
// nullopt when the key is younger than max_age.
std::optional<std::string> key_age_warning(const std::string& fleet, const std::string& node, int64_t modified, int64_t now,
                                           uint64_t max_age, const std::string& source);

}  // namespace wgf::plan
