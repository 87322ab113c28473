// diff: desired HostState vs live HostState -> an ordered plan of minimal operations.
// Pure. Minimal means per peer and per field: an unchanged private key or port is never set
// again, one changed peer yields one peer operation, a roaming peer's live endpoint is left
// alone, and nothing wg-fleet does not own is touched (foreign peers are only reported unless
// their fleet is exclusive).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/host_state.hpp"
#include "plan/ops.hpp"

namespace wgf::plan {

// A sysctl wg-fleet changed: the value it found (restored once wg-fleet no longer needs its own)
// and the value it set (a live value that differs from it was changed by someone else since,
// and is theirs: never restored over).
struct OwnedSysctl {
    std::string original;
    std::string value;

    auto operator<=>(const OwnedSysctl&) const = default;
};

// What the last successful apply configured (kept in state_dir): the evidence that something on
// the machine is ours, and the desired endpoints it applied (to recognise roaming).
struct Ownership {
    std::set<std::string> interfaces;
    std::map<std::string, std::set<model::Key>> peers;                       // by interface
    std::map<std::string, std::map<model::Key, model::Endpoint>> endpoints;  // by interface
    std::set<std::string> files;
    std::map<std::string, OwnedSysctl> sysctls;  // by key
    // Each peer's node name, by interface: a peer removed from the fleet has no name there, and
    // plan still names it. A record written before names were kept has none.
    std::map<std::string, std::map<model::Key, std::string>> names;
    // Directories whose reload is owed (model::FileReload): written ahead of an apply that
    // reloads, kept after it fails, so the next run reloads (with the command then configured)
    // even when the files are already as desired.
    std::set<std::string> reloads;
    // The reload command of each directory whose files are ours (labels' reload when written):
    // when the configuration stops naming it (http_server: caddy -> traefik, another
    // http_routes_dir), removing its files still reloads the program that imported them.
    std::map<std::string, std::string> reload_commands;

    auto operator<=>(const Ownership&) const = default;
};

// Facts about live peers that are not state: when they last completed a handshake.
struct LiveFacts {
    std::map<std::string, std::map<model::Key, int64_t>> last_handshake;  // seconds since epoch
    int64_t now = 0;
    // Managed paths that exist but are not ours: no marker line (""), or not a regular file
    // ("a symbolic link", "a directory", ...). They are conflicts, never written or removed.
    std::map<std::string, std::string> foreign_files;
    // Someone else's firewall (backend::FirewallLive): what may drop fleet traffic.
    std::vector<model::ForeignDrop> foreign_drops;
    std::vector<std::string> legacy_tables;
};

struct DiffOptions {
    std::set<std::string> exclusive;  // interfaces whose foreign peers are removed
    // For a peer with no recorded endpoint: a handshake this recent means its session is alive.
    int64_t roaming_window = 180;
};

struct Plan {
    std::vector<Op> ops;
    std::vector<std::string> foreign;  // foreign peers left alone, as "name-or-key on ifname"
    std::vector<std::string> pending;  // members without a public key, as "node in fleet"
    std::vector<std::string> kept;     // differences deliberately left (roaming endpoints)
    // Desired files whose path holds something wg-fleet did not write, as "! conflict: ..."
    // lines: left as is; the node cannot match the fleet until someone resolves them.
    std::vector<std::string> conflicts;

    bool empty() const { return ops.empty(); }
    bool converged() const { return ops.empty() && conflicts.empty(); }
};

// `labels` name what desired has (peers, key files, pending members) for the ops and messages.
Plan diff(const model::HostState& desired, const model::Labels& labels, const model::HostState& live, const Ownership& owned,
          const LiveFacts& facts = {}, const DiffOptions& opts = {});

// Ownership after applying `desired`, its peers named as `labels` name them.
Ownership ownership_after(const model::HostState& desired, const model::Labels& labels = {});

// "Plan: 2 to add, 1 to change, 0 to remove; disrupts 1 peer session." (plus the conflicts)
std::string summarize(const Plan& plan);

}  // namespace wgf::plan
