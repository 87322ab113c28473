// Private keys of this node behind one interface: one per fleet, kept where the implementation
// keeps them (system/: 0600 files under state_dir), never logged or printed. Published public
// keys go through it too.
#pragma once

#include <optional>
#include <string>

#include "backend/status.hpp"
#include "model/net.hpp"

namespace wgf::backend {

class KeyStore {
public:
    virtual ~KeyStore() = default;
    // Loads the key at path; nullopt when absent. Errors on unreadable or malformed files.
    virtual Result<std::optional<model::SecretKey>> load(const std::string& path) = 0;
    // Loads, or generates and stores (0600) when absent. Of several runs generating one key at
    // once, all return the one that was stored.
    virtual Result<model::SecretKey> load_or_generate(const std::string& path) = 0;
    virtual Status publish(const std::string& path, const model::Key& public_key) = 0;
};

}  // namespace wgf::backend
