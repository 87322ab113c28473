// The narrow interfaces every effect on the machine goes through. Each reads live state into the
// same model types the desired state uses, and applies one typed change. One Linux implementation
// each lives in linux/; in-memory fakes for logic tests live in fake.hpp.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/status.hpp"
#include "model/host_state.hpp"
#include "model/net.hpp"

namespace wgf::backend {

using model::Endpoint;
using model::Key;
using model::Prefix;
using model::SecretKey;

// ---- WireGuard devices -------------------------------------------------------------------
// Mirrors what the kernel and the UAPI protocol can express: a device change carries only the
// fields to set, and per peer only what changes. Nothing here can "replace all peers" except
// replace_peers, which is used only for a device that was just created.

struct WgPeerChange {
    Key public_key;
    bool remove = false;                // remove this peer (nothing else is applied)
    bool update_only = false;           // do not create the peer if it is missing
    std::optional<Endpoint> endpoint;   // IP literal and port; unset = leave as is
    std::optional<uint16_t> keepalive;  // unset = leave as is; 0 = off
    bool replace_allowed_ips = false;   // true: allowed_ips is the whole new list
    std::vector<Prefix> allowed_ips;    // added (or the replacement list)

    auto operator<=>(const WgPeerChange&) const = default;
};

struct WgDeviceChange {
    std::string ifname;
    std::optional<SecretKey> private_key;  // unset = leave as is
    std::optional<uint16_t> listen_port;   // unset = leave as is; 0 = random
    std::optional<uint32_t> fwmark;        // unset = leave as is; 0 = off
    bool replace_peers = false;            // only for a device created in this apply
    std::vector<WgPeerChange> peers;
};

// Live-only facts about a peer, kept out of the compared state.
struct WgPeerStats {
    int64_t last_handshake = 0;  // seconds since the epoch; 0 = never
    uint64_t rx_bytes = 0, tx_bytes = 0;
};

struct WgDeviceLive {
    model::WgInterface device;  // name, listen_port, public key, peers (fleet/name empty)
    std::optional<uint32_t> fwmark;
    // The device's private key, when it has one. Only a try keeps it (to restore it on
    // rollback); it is never logged, compared or shown, and wiped when the read goes.
    std::optional<SecretKey> private_key;
    std::map<Key, WgPeerStats> stats;
};

class WireGuard {
public:
    virtual ~WireGuard() = default;
    virtual std::vector<std::string> list_devices() = 0;
    // Error ENODEV when no such WireGuard device exists.
    virtual Result<WgDeviceLive> read_device(const std::string& ifname) = 0;
    virtual Status set_device(const WgDeviceChange& change) = 0;
    // Creates the link (kernel) or starts a userspace implementation for it.
    virtual Status create_device(const std::string& ifname) = 0;
    virtual Status delete_device(const std::string& ifname) = 0;
};

// ---- Links, addresses, routes (rtnetlink) ------------------------------------------------
// Routes wg-fleet installs carry its own route protocol number; only those are read or removed.
inline constexpr uint8_t kRouteProtocol = 0x57;  // 87, 'W': unassigned in the kernel's rtnetlink.h

struct LinkLive {
    std::string name;
    int ifindex = 0;
    std::string kind;  // "wireguard", "tun" (wireguard-go), "veth", ...
    uint32_t mtu = 0;
    bool up = false;
};

class Links {
public:
    virtual ~Links() = default;
    virtual Result<std::optional<LinkLive>> read_link(const std::string& name) = 0;
    virtual Result<model::AddressSet> read_addresses(const std::string& name) = 0;
    // Our routes (protocol kRouteProtocol, main table or model::kExitTable) on these devices only. The protocol alone
    // does not make a route ours: another program, or a second wg-fleet with its own state_dir
    // and interfaces, may use the same number on its own devices.
    virtual Result<std::set<model::Route>> read_routes(const std::set<std::string>& devices) = 0;
    virtual Status set_mtu(const std::string& name, uint32_t mtu) = 0;
    virtual Status set_up(const std::string& name, bool up) = 0;
    virtual Status add_address(const std::string& name, const Prefix& addr) = 0;
    virtual Status del_address(const std::string& name, const Prefix& addr) = 0;
    virtual Status add_route(const model::Route& route) = 0;
    virtual Status del_route(const model::Route& route) = 0;
    // Our policy routing rules: those carrying kRouteProtocol (FRA_PROTOCOL) at the priorities
    // wg-fleet uses (model::kExitSuppressPriority, model::kExitMarkPriority), IPv4 and IPv6.
    virtual Result<std::set<model::PolicyRule>> read_rules() = 0;
    // With our protocol; an existing rule is an EEXIST error.
    virtual Status add_rule(const model::PolicyRule& rule) = 0;
    // Only a rule of ours: one that is not there or carries another protocol is ENOENT.
    virtual Status del_rule(const model::PolicyRule& rule) = 0;
};

// ---- sysctls -------------------------------------------------------------------------------
class Sysctls {
public:
    virtual ~Sysctls() = default;
    // key is relative to /proc/sys, with '/' separators: "net/ipv6/conf/all/forwarding".
    virtual Result<std::string> read(const std::string& key) = 0;
    virtual Status write(const std::string& key, const std::string& value) = 0;
    // The entries of a sysctl directory, sorted: list("net/ipv6/conf") names "all", "default"
    // and every interface. A directory that does not exist (no IPv6) lists as empty.
    virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
};

// ---- nftables --------------------------------------------------------------------------------
// One table of our own (inet wg-fleet); each rule carries its FwRule id as its comment.
inline constexpr const char* kNftTable = "wg-fleet";

struct FirewallChange {
    std::vector<std::string> remove;  // rule ids
    std::vector<model::FwRule> add;
};

// What a read of our table found: the rules it recognises, by id, and the damage (everything
// else, sorted), which the next apply repairs.
struct FirewallLive {
    std::map<std::string, model::FwRule> rules;
    std::vector<model::FwDamage> damage;
    // Outside our table, read only: other tables' input and forward chains that drop by policy,
    // and the iptables-legacy tables loaded (/proc/net/ip{,6}_tables_names), whose rules nftables
    // cannot show.
    std::vector<model::ForeignDrop> foreign_drops;
    std::vector<std::string> legacy_tables;  // "ip filter", "ip6 filter", ...
    // Our marked rules in those tables' chains (firewall: foreign_accept), by ForeignRule::key().
    std::map<std::string, model::ForeignRule> foreign_rules;
    // The state of the ruleset the table was read at, as read_if_changed takes it: the
    // generation nftables counts commits in, with the boot, the network namespace and the table
    // it holds for. Empty when the read cannot name one (then none is kept).
    std::string generation;
    // Set by read_if_changed when the ruleset was still at the generation it was given: our
    // table was not read, and `rules` and `damage` are empty; they are what the table held at
    // that generation, which the caller knows.
    bool table_unchanged = false;

    bool operator==(const FirewallLive&) const = default;
};

class Firewall {
public:
    virtual ~Firewall() = default;
    // An absent table reads as empty.
    virtual Result<FirewallLive> read() = 0;
    // read(), except that our table is not read when the ruleset is provably still at
    // `generation` (the FirewallLive::generation of an earlier read): then table_unchanged is
    // set. Other tables are read as always. A firewall that cannot tell reads everything.
    virtual Result<FirewallLive> read_if_changed(const std::string& generation) {
        (void)generation;
        return read();
    }
    // Applies the change in one atomic batch (creating the table and chains when missing), and
    // repairs whatever damage it finds in the table on the way.
    virtual Status apply(const FirewallChange& change) = 0;
    // Deletes the whole table.
    virtual Status remove_all() = 0;
    // Another table's chain (firewall: foreign_accept), never the table or chain itself:
    // inserts the rule at the head of its chain, or deletes every rule of the chain that carries
    // its comment (none there, or no chain any more: nothing to do).
    virtual Status add_foreign(const model::ForeignRule& rule) = 0;
    virtual Status remove_foreign(const model::ForeignRule& rule) = 0;
};

// ---- Managed files ----------------------------------------------------------------------------
struct FileLive {
    model::ManagedFile file;  // content only when has_marker (a foreign file is not read)
    bool has_marker = false;  // carries model::kFileMarker: ours to change
    std::string not_regular;  // what the path is when not a regular file ("a symbolic link")
    uint32_t uid = 0, gid = 0;
};

// Where a path lands once its directory is resolved (symbolic links, `..`, bind mounts): the
// device and inode of its nearest existing ancestor directory and the rest of the path below
// it. Two paths with one place are one file.
struct FilePlace {
    uint64_t dev = 0, ino = 0;
    std::string rest;

    auto operator<=>(const FilePlace&) const = default;
};

class Files {
public:
    virtual ~Files() = default;
    virtual Result<std::optional<FileLive>> read(const std::string& path) = 0;
    // Atomic: temporary file in the same directory, fsync, rename; mode set before rename.
    // Refuses (EEXIST) to replace anything but a regular file carrying the marker, checked again
    // right before the rename.
    virtual Status write(const model::ManagedFile& file) = 0;
    // Removes only a regular file carrying the marker.
    virtual Status remove(const std::string& path) = 0;
    virtual Result<FilePlace> place(const std::string& path) = 0;
    // Whether `path` resolves to a place inside directory `dir` (or to `dir` itself).
    virtual Result<bool> within(const std::string& path, const std::string& dir) = 0;
};

// ---- Commands ----------------------------------------------------------------------------------
// A command the configuration names (caddy_reload), run for its effect on another program.
class Commands {
public:
    virtual ~Commands() = default;
    // Succeeds when the command exits 0; otherwise the error quotes the command, its exit status
    // and the end of its output.
    virtual Status run(const std::string& command) = 0;
};

}  // namespace wgf::backend
