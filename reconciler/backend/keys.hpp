// Private keys of this node behind one interface: one per fleet, kept where the implementation
// keeps them (system/: 0600 files under state_dir), never logged or printed. Published public
// keys go through it too.
#pragma once

#include <optional>
#include <string>
#include <vector>

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
    // Writes a key that exists already elsewhere to `path`, 0600 from creation, the way a
    // generated one is: true when written, false when `path` existed (nothing is replaced).
    virtual Result<bool> install(const std::string& path, const model::SecretKey& key) = 0;

    // Key rotation (`wg-fleet rotate`): the next key waits beside the key file until its switch
    // time; then it is moved into place (atomically: the key file is the old key or the new one,
    // never neither) and its published next key (`<node>.next.pub`) removed.
    virtual Status promote(const std::string& next_file, const std::string& key_file) = 0;
    // Removes a published file of this node; one that does not exist is fine.
    virtual Status unpublish(const std::string& path) = 0;
};

// A published next key of one member, as read from <keys_dir>/<fleet>/<node>.next.pub.
struct NextKeyFile {
    std::string node;
    std::string path;
    std::optional<model::Key> key;  // with switch_at, when the file is usable
    int64_t switch_at = 0;
    std::string refused;  // why it is not used (located, never its content)
};

// The published next keys of a fleet, read by the run (inputs/rotation on the real machine).
class NextKeys {
public:
    virtual ~NextKeys() = default;
    virtual std::vector<NextKeyFile> read(const std::string& keys_dir, const std::string& fleet) = 0;
};

}  // namespace wgf::backend
