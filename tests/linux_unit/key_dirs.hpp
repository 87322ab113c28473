// A node's state_dir with its private key of fleet "mesh" (0600) and a keys_dir with the fleet's
// directory, in a fresh temp dir, and the Config naming them: what the tests of files read from
// keys_dir (published keys, next keys) start from.
#pragma once

#include <filesystem>
#include <fstream>

#include "model/spec.hpp"
#include "temp_dir.hpp"

namespace wgf::test {

struct KeyDirs {
    TempDir d;
    std::filesystem::path state = d.path / "state", keys = d.path / "keys", pub = keys / "mesh";
    model::SecretKey secret = model::SecretKey::generate();
    model::Config cfg;
    KeyDirs() {
        namespace fs = std::filesystem;
        fs::create_directories(state);
        fs::create_directories(pub);
        std::ofstream(state / "mesh.key") << secret.base64_for_storage() << "\n";
        fs::permissions(state / "mesh.key", fs::perms::owner_read | fs::perms::owner_write);
        cfg.state_dir = state.string();
        cfg.keys_dir = keys.string();
        cfg.fleets["mesh"];
    }
};

}  // namespace wgf::test
