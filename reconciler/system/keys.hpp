// The node's private keys as files: 0600 under state_dir from creation, generated with link()
// so racing first runs agree on one key; public keys published as one line (0644).
#pragma once

#include <optional>
#include <string>

#include "backend/keys.hpp"

namespace wgf::system {

class FileKeyStore : public backend::KeyStore {
public:
    backend::Result<std::optional<model::SecretKey>> load(const std::string& path) override;
    backend::Result<model::SecretKey> load_or_generate(const std::string& path) override;
    // A file that holds exactly that line already is left alone: every apply publishes, and an
    // unchanged keys_dir stays unchanged (its readers see no new file).
    backend::Status publish(const std::string& path, const model::Key& public_key) override;
    // rename(2) of the next key onto the key file, then the directory fsynced. The next key must
    // be a regular file of its own (not a link), as a key file is.
    backend::Status promote(const std::string& next_file, const std::string& key_file) override;
    backend::Status unpublish(const std::string& path) override;
    // Also for `serve --import-python` (the Python manager's server key; the caller compares
    // when the file existed).
    backend::Result<bool> install(const std::string& path, const model::SecretKey& key) override;
    // Set when a key file was readable by group or others (the caller warns).
    std::optional<std::string> loose_permissions;
};

}  // namespace wgf::system
