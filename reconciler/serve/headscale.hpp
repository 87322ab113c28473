// The Headscale source of `wg-fleet serve`: Headscale's nodes as clients of a subnet-style fleet.
// Pure: the API's JSON parsed, the mapping from node ids to addresses and public keys (sequential
// allocation from the pool, the grace period before a missing node goes, its JSON form), the
// import of the Python sync service's state file, the members the fleet should have, and the
// read-side answers (health, peers, a node's wg-quick config) as JSON or text.
//
// Invariants of a Mapping: every entry has an address inside the pool that no other entry holds;
// an address is never changed while its node is in the mapping; private keys are never part of
// it (the caller keeps them in 0600 files and passes one in only to render that node's config).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backend/status.hpp"
#include "model/net.hpp"
#include "model/spec.hpp"
#include "store/headscale_mapping.hpp"

namespace wgf::serve::headscale {

// One node of GET /api/v1/node, the fields wg-fleet reads.
struct Node {
    std::string id;
    std::string name;        // from the machine's host name
    std::string given_name;  // the name shown in Headscale (renameable); preferred
    std::vector<std::string> ip_addresses;
    std::string user;
    bool online = false;
    std::string last_seen;

    auto operator<=>(const Node&) const = default;
};

// The body of GET /api/v1/node: {"nodes": [...]}. Accepts grpc-gateway's camelCase and the
// protobuf snake_case spellings, ids as strings or numbers, and ignores unknown fields. An error
// (malformed JSON, wrong shape, a node without an id) rejects the whole response.
backend::Result<std::vector<Node>> parse_nodes(std::string_view body);

// Mapping, Entry, valid_node_id and the mapping's file are in store/headscale_mapping.hpp: every
// command that builds the desired state reads the mapping, not only serve.

// The public key of a new node's key pair, generated and stored by the caller; an error leaves
// the node out of this poll (its address is not taken).
using KeySource = std::function<backend::Result<model::Key>(const std::string& node_id)>;

struct SyncInput {
    model::Prefix pool;
    std::set<model::IpAddr> reserved;   // held by others: the server, the fleet's members, enrolled clients
    std::set<std::string> taken_names;  // member names the fleet already has
    uint64_t grace = 600;               // seconds
    int64_t now = 0;                    // unix seconds
};

// The pool, reserved addresses, taken names and grace of a fleet with headscale:, from the fleet
// file's configuration before any enrolled or Headscale member is merged into it (or the nodes'
// own names and addresses would count as taken). The caller adds what serve's store holds.
SyncInput sync_input(const model::Config& cfg, const std::string& fleet, int64_t now);

struct SyncResult {
    Mapping mapping;
    std::vector<std::string> added;     // node ids
    std::vector<std::string> removed;   // node ids whose grace ran out
    std::vector<std::string> problems;  // one line per node left out (no address free, bad id, no key)
};

// One successful poll applied: new nodes get the next free address after last_ip (wrapping to
// the pool's start, skipping held and reserved ones) and a key from `keys`; a node the poll did
// not list is marked missing and removed once missing for `grace`; a listed node is no longer
// missing and takes its current name. Addresses of kept nodes never change.
SyncResult sync(const Mapping& current, const std::vector<Node>& nodes, const SyncInput& in, const KeySource& keys);

// The first address of the pool nodes get: its second, the first being the server's by custom.
model::IpAddr pool_start(const model::Prefix& pool);
// The first address after `from` (or from the start) that is in neither set, wrapping around
// once; nullopt when the pool is exhausted. IPv4 pools end before their broadcast address.
std::optional<model::IpAddr> next_free(const model::Prefix& pool, const std::optional<model::IpAddr>& from,
                                       const std::set<model::IpAddr>& held, const std::set<model::IpAddr>& reserved);

// The mapping as stored (state_dir/headscale/<fleet>.json; mapping_to_json in
// store/headscale_mapping.hpp) read back.
backend::Result<Mapping> mapping_from_json(std::string_view text);

// The Python sync service's sync-service-state.json:
//   {"processed_nodes": {"<node id>": "<ip>", ...}, "last_ip": "<ip>"}
// (a key "node_<id>" stands for node <id>; last_ip optional). Every address is kept; the nodes
// are merged into `current` (an id already there must have the same address and keeps its key);
// each new node gets a key from `keys` and the name node-<id> until the first poll names it.
// Addresses outside in.pool or in in.reserved are refused.
backend::Result<Mapping> import_sync_state(std::string_view text, const SyncInput& in, const Mapping& current, const KeySource& keys);

// A member the fleet should have for a Headscale node, for serve's merge into the desired state.
struct Member {
    std::string fleet;
    std::string name;
    std::string node_id;
    model::Key public_key;
    model::IpAddr address;

    auto operator<=>(const Member&) const = default;
};

std::vector<Member> members(const std::string& fleet, const Mapping& m);
std::string members_json(const std::vector<Member>& all);

// GET /health.
struct Health {
    std::optional<int64_t> last_success;  // unix seconds of the last poll that succeeded
    std::string last_error;               // of the last poll, empty when it succeeded
    size_t nodes = 0;
};
std::string health_json(const Health& h);

// GET /peers: {"processed_nodes": {"<node id>": "<ip>"}, "last_ip": "<ip>"}.
std::string peers_json(const Mapping& m);

// What a node's wg-quick config says about the server it connects to.
struct ServerSide {
    model::Key public_key;
    std::optional<model::Endpoint> endpoint;
    std::vector<model::Prefix> allowed_ips;  // the fleet's prefixes the node routes to the server
    uint16_t keepalive = 25;
    std::optional<uint32_t> mtu;
};

// The server's side of a node's config in `fleet`: its endpoint (external_ip and port), the
// fleet's prefixes, keepalive and MTU, with the server's public key given.
ServerSide server_side(const model::Config& cfg, const std::string& fleet, const model::Key& server_public_key);

// GET /peer/{node_id}/config: nullopt when the mapping has no such node (404). The text carries
// the node's private key: only the serve endpoint that is allowed to hand it out calls this.
std::optional<std::string> peer_config(const Mapping& m, const std::string& node_id, const model::SecretKey& private_key,
                                       const ServerSide& server);

}  // namespace wgf::serve::headscale
