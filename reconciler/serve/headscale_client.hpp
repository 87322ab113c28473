// The I/O half of the Headscale source: one poll of GET {url}/api/v1/node with the API key,
// the mapping kept in state_dir, each node's private key in a 0600 file. A poll that fails in any
// way (key file, connection, timeout, HTTP status, body) changes nothing: no node is removed or
// added and the mapping file is not written.
//
// Files, under state_dir/headscale/: <fleet>.json (the mapping, 0600, replaced atomically) and
// <fleet>/<node id>.key (a node's private key, 0600). Nothing here logs: the outcome carries the
// lines to log, none of which holds the API key or a private key.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/status.hpp"
#include "model/spec.hpp"
#include "serve/headscale.hpp"

namespace wgf::serve::headscale {

// Where one fleet's mapping is kept, so serve's store may hold it later instead of the file.
class MappingStore {
public:
    virtual ~MappingStore() = default;
    // The stored mapping; an empty one when none has been stored yet.
    virtual backend::Result<Mapping> load(const std::string& fleet) = 0;
    virtual backend::Status save(const std::string& fleet, const Mapping& m) = 0;
};

// dir/<fleet>.json, written atomically with mode 0600 in a 0700 directory.
class FileMappingStore : public MappingStore {
public:
    explicit FileMappingStore(std::string dir) : dir_(std::move(dir)) {}
    backend::Result<Mapping> load(const std::string& fleet) override;
    backend::Status save(const std::string& fleet, const Mapping& m) override;
    std::string path(const std::string& fleet) const { return dir_ + "/" + fleet + ".json"; }

private:
    std::string dir_;
};

// The nodes' private keys: dir/<fleet>/<node id>.key, 0600, generated once and kept, so a
// restart gives every node the key it had.
class NodeKeys {
public:
    explicit NodeKeys(std::string dir) : dir_(std::move(dir)) {}
    // The public key of the node's key pair, generating it when the node has none.
    backend::Result<model::Key> public_key(const std::string& fleet, const std::string& node_id);
    backend::Result<std::optional<model::SecretKey>> load(const std::string& fleet, const std::string& node_id);
    backend::Status remove(const std::string& fleet, const std::string& node_id);
    std::string path(const std::string& fleet, const std::string& node_id) const;

private:
    std::string dir_;
};

// state_dir/headscale.
std::string headscale_dir(const model::Config& cfg);

// The API key: the file's content without surrounding white space. Refused when group or others
// may read the file, or when it is empty.
backend::Result<std::string> read_api_key(const std::string& path);

// The body of a 200 answer to GET {url}/api/v1/node with `Authorization: Bearer <key>`, within
// the configured timeout; an error naming the cause (rejected key, timeout, refused connection,
// another status) otherwise.
backend::Result<std::string> fetch_nodes(const model::Headscale& hs, const std::string& api_key);

struct PollOutcome {
    backend::Status status;          // the poll's failure; nothing changed then
    Mapping mapping;                 // after the poll (as stored)
    std::vector<Member> members;     // of the mapping
    std::vector<std::string> notes;  // nodes added, removed, left out: one log line each
};

struct PollContext {
    const model::Config& cfg;  // the fleet file's, before any member is merged in (see sync_input)
    std::string fleet;
    MappingStore& store;
    NodeKeys& keys;
    int64_t now = 0;                    // unix seconds
    std::set<model::IpAddr> reserved;   // more addresses held by others (enrolled clients)
    std::set<std::string> taken_names;  // more names held by others
};

// One poll of the fleet's Headscale server applied to its mapping.
PollOutcome poll_once(const PollContext& ctx);

// Imports the sync service's state file into the fleet's mapping (see import_sync_state).
backend::Result<Mapping> import_sync_state_file(const PollContext& ctx, const std::string& path);

// A node's wg-quick config with its private key; nullopt when the mapping has no such node.
backend::Result<std::optional<std::string>> node_config(const PollContext& ctx, const std::string& node_id,
                                                        const model::Key& server_public_key);

}  // namespace wgf::serve::headscale
