// HostState: one node's network state. The same type describes what should be (rendered from the
// fleet) and what is (read from the kernel), so the two compare with ==. What only the fleet
// knows (member names, the key file, pending members) is kept beside it in Labels.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.hpp"
#include "model/normalize.hpp"
#include "model/spec.hpp"

namespace wgf::model {

struct WgPeer {
    Key public_key{};
    std::optional<Endpoint> endpoint{};
    PrefixSet allowed_ips{};
    uint16_t keepalive = 0;

    auto operator<=>(const WgPeer&) const = default;
};

struct WgInterface {
    std::string name{};
    std::optional<uint16_t> listen_port{};  // unset: the kernel picks one (peers)
    std::optional<uint32_t> mtu{};
    bool up = false;                  // desired: always; live: the link's IFF_UP
    std::optional<Key> public_key{};  // live: the device's; desired: derived from the key file
    uint32_t fwmark = 0;              // 0: none; set on a member that sends all traffic to an exit node
    AddressSet addresses{};
    std::map<Key, WgPeer> peers{};

    auto operator<=>(const WgInterface&) const = default;
};

// The kernel's main routing table (RT_TABLE_MAIN), where every route but an exit node's goes.
inline constexpr uint32_t kMainTable = 254;
// A member using an exit node (exit_node:) routes by policy the way wg-quick does for 0.0.0.0/0:
// its WireGuard device marks its own packets with kExitMark, a rule sends every unmarked packet to
// table kExitTable (which holds the default routes through the device), and a rule before it
// looks in the main table first, ignoring default routes there (suppress_prefixlength 0), so
// the fleet's and the LAN's own routes still win. The tunnel's packets carry the mark and take
// the main table's default route to the controller: they never loop.
inline constexpr uint32_t kExitTable = 0x7767;  // 30567: "wg"
inline constexpr uint32_t kExitMark = kExitTable;
inline constexpr uint32_t kExitSuppressPriority = 30566;  // the main table first
inline constexpr uint32_t kExitMarkPriority = 30567;      // then, unmarked: table kExitTable

struct Route {
    Prefix dst;
    std::string dev;
    std::optional<IpAddr> src = std::nullopt;  // preferred source address (RTA_PREFSRC)
    uint32_t table = kMainTable;

    auto operator<=>(const Route&) const = default;
};

// A policy routing rule (ip rule) of ours: it carries our route protocol number, like our routes.
struct PolicyRule {
    uint8_t family = 4;  // 4 or 6
    uint32_t priority = 0;
    uint32_t table = 0;
    uint32_t fwmark = 0;  // 0: no mark matched
    bool invert = false;  // "not": the rule applies to what does not match
    std::optional<uint8_t> suppress_prefixlength = std::nullopt;

    auto operator<=>(const PolicyRule&) const = default;
};

// exit_forward and exit_masquerade: a controller that is an exit node lets one member's
// address (`from`) out of the fleet's interface (`iif`) and masquerades it when it leaves through
// an interface that is not one of the fleet's (`not_oif`); inside the fleet it keeps its source.
enum class FwKind { accept_udp, forward, dnat, masquerade, exit_forward, exit_masquerade };

// One firewall intent; `id` is unique and becomes the rule's comment in our nftables table.
struct FwRule {
    std::string id{};
    FwKind kind = FwKind::accept_udp;
    Proto proto = Proto::udp;
    uint16_t port = 0;           // accept_udp / dnat: the local port
    std::string iif{}, oif{};    // forward / masquerade
    std::optional<IpAddr> to{};  // dnat target
    uint16_t to_port = 0;
    std::optional<IpAddr> from{};        // exit_forward / exit_masquerade: the member's address
    std::vector<std::string> not_oif{};  // exit_masquerade: the node's fleet interfaces, sorted

    auto operator<=>(const FwRule&) const = default;
};

// Something in our nftables table that wg-fleet would not build as it is. Only the live read
// reports it (it is never desired), so every diff against a damaged table is non-empty and the
// next apply removes it and rebuilds what it replaced.
struct FwDamage {
    enum class What : uint8_t {
        rule,         // no usable comment, a duplicate id, a shape we do not build, or in a chain to recreate
        chain,        // a base chain missing or different (type, hook, priority, policy), or not ours
        set,          // a named set or map that is not one of our DNAT maps
        established,  // the ct state established,related rule is missing or changed
        table_flags,  // the table was made dormant
        map,          // one of our DNAT maps missing or misshapen, or its lookup rule missing
        element,      // an element of a DNAT map without a usable comment, or one we do not build
    };
    What what = What::rule;
    uint64_t handle = 0;            // rule: its nftables handle
    std::string name;               // chain, set, map, element: the chain's, set's or map's name
    std::optional<FwRule> decoded;  // rule, element: what it decodes to (id empty), when a shape we build

    auto operator<=>(const FwDamage&) const = default;
};

// A base chain of another table than ours (Docker's, firewalld's, a hand-written ruleset, an
// iptables-nft chain) that drops by policy what reaches its hook: fleet traffic to this node
// (hook input) or through it (hook forward) ends there unless one of the chain's rules accepts
// it. Read for the warning that says what to add; never changed.
struct ForeignDrop {
    std::string family;  // "ip", "ip6", "inet", "bridge", ...
    std::string table, chain;
    std::string hook;  // "input" or "forward"
    int32_t priority = 0;

    auto operator<=>(const ForeignDrop&) const = default;
};

// First line of every file wg-fleet writes: the mark of ownership. A file without it is never
// changed or removed unless the configuration names it.
inline constexpr const char* kFileMarker = "# Managed by wg-fleet: edits are overwritten.";

// Whether content's first line is exactly the marker.
inline bool has_file_marker(std::string_view content) {
    const std::string_view m(kFileMarker);
    return content.substr(0, m.size()) == m && (content.size() == m.size() || content[m.size()] == '\n');
}

// An accept rule wg-fleet inserts at the head of another table's dropping chain (a ForeignDrop)
// when the fleet opts in (firewall: foreign_accept): the rule the warning names. Ours by its
// comment, kForeignRuleMark + id; no other rule of that table is ever changed, and the table and
// chain are never created or deleted.
inline constexpr const char* kForeignRuleMark = "wg-fleet:";
struct ForeignRule {
    std::string family, table, chain;  // where it lives: "ip filter FORWARD"
    // What it accepts: "udp-dport-PORT", "iif-IFNAME" or "oif-IFNAME" (the expressions are built
    // from it, so the id says everything).
    std::string id;
    // live: its expressions are those wg-fleet builds for id, and no other rule has its comment;
    // desired: always.
    bool as_built = true;

    // Unique on a machine: "ip filter FORWARD iif-edge".
    std::string key() const { return family + " " + table + " " + chain + " " + id; }
    auto operator<=>(const ForeignRule&) const = default;
};

struct ManagedFile {
    std::string path;
    std::string content;
    uint32_t mode = 0644;

    auto operator<=>(const ManagedFile&) const = default;
};

struct HostState {
    std::map<std::string, WgInterface> interfaces;
    std::set<Route> routes;
    std::set<PolicyRule> rules;                        // policy routing rules (ip rule)
    std::map<std::string, std::string> sysctls;        // /proc/sys relative path -> value
    std::map<std::string, FwRule> firewall;            // by id
    std::vector<FwDamage> firewall_damage;             // live only, sorted
    std::map<std::string, ManagedFile> files;          // by path
    std::map<std::string, ForeignRule> foreign_rules;  // by key(): our rules in other tables' chains

    auto operator<=>(const HostState&) const = default;
};

// What the fleet says about one desired interface that the machine does not hold.
struct InterfaceLabels {
    std::string fleet;
    std::string private_key_file;           // where this node keeps its key (state_dir)
    bool generate_key = false;              // no key file yet: the apply generates one
    std::vector<std::string> pending;       // members with no public key yet: not configured
    std::map<Key, std::string> peer_names;  // each configured peer's node name

    auto operator<=>(const InterfaceLabels&) const = default;
};

// The command that makes a program read the managed files in `dir` again (Caddy's reload: it
// does not watch the files it imports). Run after a plan writes or removes one of them.
struct FileReload {
    std::string dir;
    std::string command;

    auto operator<=>(const FileReload&) const = default;
};

// The labels of a desired HostState, by interface name. Messages look names up here; a live-only
// interface or peer has none.
struct Labels {
    std::map<std::string, InterfaceLabels> interfaces;
    std::optional<FileReload> reload;  // of the HTTP route files
    // firewall: foreign_accept: the accept rules of other tables' dropping chains are desired
    // (known only once the live chains are read).
    bool foreign_accept = false;

    // The labels of `ifname`; empty ones when it has none.
    const InterfaceLabels& of(const std::string& ifname) const;
    // The node name of a peer, "" when it has none.
    const std::string& peer_name(const std::string& ifname, const Key& key) const;

    auto operator<=>(const Labels&) const = default;
};

}  // namespace wgf::model
