// Public keys published as <keys_dir>/<fleet>/<node>.pub, read from a directory other nodes (or
// a deployment tool) write: nothing read there may be a secret of this node. A file is refused
// when it resolves inside state_dir, is one of the node's secret files (by device and inode, so
// hard links count), is not a regular file, is larger than 128 bytes, or holds a key equal to one
// of the node's private keys (a copy). Links to read-only stores (NixOS's /nix/store) are fine.
// A refusal names the file and why, never its content.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "model/net.hpp"
#include "model/spec.hpp"

namespace wgf::inputs {

inline constexpr size_t kPublishedKeyMaxBytes = 128;

// What a published key must never be: the node's secret files and the keys they hold.
struct Secrets {
    std::string state_dir;                           // resolved; empty when it does not exist
    std::vector<std::string> files;                  // the node's secret files (private keys; later tokens)
    std::vector<std::pair<uint64_t, uint64_t>> ids;  // (st_dev, st_ino) of those that exist
    std::vector<model::SecretKey> keys;              // the private keys this process can read
};

// path with every link and `..` resolved (realpath), or "" when it does not exist.
std::string resolved_path(const std::string& path);

// The secret files of a node under cfg: one private key file per fleet, and the next key
// beside it while a rotation is pending (`wg-fleet rotate`).
std::vector<std::string> secret_files(const model::Config& cfg);
Secrets load_secrets(const model::Config& cfg);

struct PublishedKey {
    std::optional<model::Key> key;  // set when the file holds a usable public key
    bool missing = false;           // no such file: the member is pending
    std::string refused;            // why the file is not used (never its content)
};

PublishedKey read_published_key(const std::string& path, const Secrets& secrets);

// The bytes of a published file after the checks every published file passes (not a secret
// file, not inside state_dir, a regular file of at most max_bytes; `what` says what such a file
// is, for the size refusal). The caller wipes the text once parsed.
struct PublishedText {
    std::string text;
    bool missing = false;
    std::string refused;
    void wipe();
};
PublishedText read_published_text(const std::string& path, const Secrets& secrets, size_t max_bytes, const char* what);
// Whether `key` is one of the node's private keys (a published copy of a secret).
bool is_private_key(const Secrets& secrets, const model::Key& key);

// Fills in members' public keys from keys_dir (replace: the directory's keys win, as in the
// sandbox). Refusals and malformed files are config errors located at keys_dir.
void merge_published_keys(config::Parsed& parsed, config::Diagnostics& diags, bool replace);

}  // namespace wgf::inputs
