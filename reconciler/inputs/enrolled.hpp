// Members the file does not list but a run-time source does: the clients enrolled through
// `wg-fleet serve` (its store, state_dir/serve.db) and the nodes of a fleet's Headscale server
// (serve's mapping, state_dir/headscale/<fleet>.json), both read read-only here.
// Each becomes a peer of its subnet-style fleet, pinned to its address, so every command that
// builds the desired state (plan, apply, watch, status, the renders) sees the same peers and a
// one-shot apply on the serve node does not remove them. A member that no longer fits the file
// (its fleet is gone or has another subnet, its name or address is taken) is left out with a
// warning: a source must never make the file invalid.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "model/net.hpp"

namespace wgf::inputs {

struct DynamicMember {
    std::string fleet;
    std::string name;  // the node name it gets: unique, and unlike any name the file can hold
    model::Key public_key{};
    model::IpAddr address{};
    std::optional<std::string> host_name{};  // its hosts entry, when it has one
    std::string source{};                    // for messages: where it came from
};

// The node name of an enrolled client: "<fleet>.<host bits in hex>". A '.' is not allowed in the
// file's node names, so it never clashes with one.
std::string enrolled_name(const std::string& fleet, const model::Prefix& subnet, const model::IpAddr& address);

// The clients in state_dir/serve.db as members. A missing store is none; a store that cannot be
// read is an error naming the file (nothing is merged then).
std::vector<DynamicMember> read_enrolled(const model::Config& cfg, config::Diagnostics& diags);

// The nodes in the Headscale mapping of each fleet with headscale: as members, named as the
// mapping names them. A missing mapping is none; one that cannot be read is an error naming the
// file (nothing is merged then).
std::vector<DynamicMember> read_headscale_members(const model::Config& cfg, config::Diagnostics& diags);

// Every run-time source's members: the enrolled clients, then the Headscale nodes.
std::vector<DynamicMember> read_dynamic_members(const model::Config& cfg, config::Diagnostics& diags);

// A fleet as the file and its drop-ins give it, without the members a run-time source added:
// what a source allocates against (its own members must not count as taken).
model::Fleet without_dynamic_members(const model::Fleet& f);
model::Config without_dynamic_members(const model::Config& cfg);

// Adds the members to their fleets (see above for what is left out). A member's address is in the
// fleet's subnet, or, for a Headscale pool inside the fleet's ipv4, in that (pinned there, with the
// IPv4 host bits as its subnet suffix).
void merge_dynamic_members(config::Parsed& parsed, const std::vector<DynamicMember>& members, config::Diagnostics& diags);

}  // namespace wgf::inputs
