// HostState: one node's network state. The same type describes what should be (rendered from the
// fleet) and what is (read from the kernel), so the two can be compared field by field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.hpp"
#include "model/spec.hpp"

namespace wgf::model {

struct WgPeer {
    Key public_key;
    std::optional<Endpoint> endpoint;
    std::vector<Prefix> allowed_ips;         // normalized: masked, sorted, unique
    uint16_t keepalive = 0;
    std::string name;                        // desired state only: the member's node name

    auto operator<=>(const WgPeer&) const = default;
};

struct WgInterface {
    std::string name;
    std::string fleet;
    std::optional<uint16_t> listen_port;     // unset: the kernel picks one (peers)
    std::optional<uint32_t> mtu;
    bool up = false;                         // desired: always; live: the link's IFF_UP
    std::string private_key_file;            // desired: where this node keeps its key (state_dir)
    std::optional<Key> public_key;           // live: the device's; desired: derived from the key file
    bool generate_key = false;               // desired: no key file yet, the apply generates one
    std::vector<Prefix> addresses;
    std::map<Key, WgPeer> peers;
    std::vector<std::string> pending;        // members with no public key yet: not configured

    auto operator<=>(const WgInterface&) const = default;
};

struct Route {
    Prefix dst;
    std::string dev;
    std::optional<IpAddr> src = std::nullopt; // preferred source address (RTA_PREFSRC)

    auto operator<=>(const Route&) const = default;
};

enum class FwKind { accept_udp, forward, dnat, masquerade };

// One firewall intent; `id` is unique and becomes the rule's comment in our nftables table.
struct FwRule {
    std::string id;
    FwKind kind = FwKind::accept_udp;
    Proto proto = Proto::udp;
    uint16_t port = 0;                       // accept_udp / dnat: the local port
    std::string iif, oif;                    // forward / masquerade
    std::optional<IpAddr> to;                // dnat target
    uint16_t to_port = 0;

    auto operator<=>(const FwRule&) const = default;
};

// Something in our nftables table that wg-fleet would not build as it is. Only the live read
// reports it (it is never desired), so every diff against a damaged table is non-empty and the
// next apply removes it and rebuilds what it replaced.
struct FwDamage {
    enum class What : uint8_t {
        rule,         // no usable comment, a duplicate id, a shape we do not build, or in a chain to recreate
        chain,        // a base chain missing or different (type, hook, priority, policy), or not ours
        set,          // a named set or map: none is ours
        established,  // the ct state established,related rule is missing or changed
        table_flags,  // the table was made dormant
    };
    What what = What::rule;
    uint64_t handle = 0;             // rule: its nftables handle
    std::string name;                // chain, set: its name
    std::optional<FwRule> decoded;   // rule: what it decodes to (id empty), when a shape we build

    auto operator<=>(const FwDamage&) const = default;
};

// First line of every file wg-fleet writes: the mark of ownership. A file without it is never
// changed or removed unless the configuration names it.
inline constexpr const char* kFileMarker = "# Managed by wg-fleet: edits are overwritten.";

// Whether content's first line is exactly the marker.
inline bool has_file_marker(std::string_view content) {
    const std::string_view m(kFileMarker);
    return content.substr(0, m.size()) == m && (content.size() == m.size() || content[m.size()] == '\n');
}

struct ManagedFile {
    std::string path;
    std::string content;
    uint32_t mode = 0644;

    auto operator<=>(const ManagedFile&) const = default;
};

struct HostState {
    std::map<std::string, WgInterface> interfaces;
    std::set<Route> routes;
    std::map<std::string, std::string> sysctls;   // /proc/sys relative path -> value
    std::map<std::string, FwRule> firewall;       // by id
    std::vector<FwDamage> firewall_damage;        // live only, sorted
    std::map<std::string, ManagedFile> files;     // by path

    auto operator<=>(const HostState&) const = default;
};

}  // namespace wgf::model
