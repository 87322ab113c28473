// The published next keys of a fleet (<keys_dir>/<fleet>/<node>.next.pub, written by `wg-fleet
// rotate`), read for the engine: every file of that name in the fleet's directory, each passing
// the checks every published file passes (inputs/published_keys.hpp: not a secret of this node,
// not inside state_dir, a regular file, at most plan::kNextKeyMaxBytes) and parsed strictly.
#pragma once

#include <string>
#include <vector>

#include "backend/keys.hpp"
#include "model/spec.hpp"

namespace wgf::inputs {

class FileNextKeys : public backend::NextKeys {
public:
    explicit FileNextKeys(const model::Config& cfg) : cfg_(cfg) {}
    // Sorted by node; an unreadable directory (none yet) has none.
    std::vector<backend::NextKeyFile> read(const std::string& keys_dir, const std::string& fleet) override;

private:
    model::Config cfg_;  // for the node's secrets: read at each call, a key may be new
};

// One file, checked and parsed (for tests and `rotate`).
backend::NextKeyFile read_next_key_file(const std::string& path, const std::string& node, const model::Config& cfg);

}  // namespace wgf::inputs
