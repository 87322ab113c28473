// Private keys of this node: one per fleet, generated on first apply, kept 0600 under state_dir,
// never logged or printed. The public key goes to keys_dir/<fleet>/<node>.pub when keys_dir is
// set, so a fleet can be bootstrapped from one shared directory.
#pragma once

#include <optional>
#include <string>

#include "backend/status.hpp"
#include "model/net.hpp"
#include "model/spec.hpp"

namespace wgf::apply {

class KeyStore {
public:
    virtual ~KeyStore() = default;
    // Loads the key at path; nullopt when absent. Errors on unreadable or malformed files.
    virtual backend::Result<std::optional<model::SecretKey>> load(const std::string& path) = 0;
    // Loads, or generates and stores (0600) when absent.
    virtual backend::Result<model::SecretKey> load_or_generate(const std::string& path) = 0;
    virtual backend::Status publish(const std::string& path, const model::Key& public_key) = 0;
};

// This node's key for a fleet: loaded once, generated (0600) when absent; `generated` says which.
backend::Result<model::SecretKey> ensure_node_key(KeyStore& keys, const model::Config& cfg, const std::string& fleet,
                                                  bool* generated);

class FileKeyStore : public KeyStore {
public:
    backend::Result<std::optional<model::SecretKey>> load(const std::string& path) override;
    backend::Result<model::SecretKey> load_or_generate(const std::string& path) override;
    backend::Status publish(const std::string& path, const model::Key& public_key) override;
    // Set when a key file was readable by group or others (the caller warns).
    std::optional<std::string> loose_permissions;
};

}  // namespace wgf::apply
