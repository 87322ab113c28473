// The ownership record as state_dir/state.json (0600, replaced atomically; its format is
// plan/ownership_json.hpp), and the early guess at this node's interfaces read from it.
#pragma once

#include <set>
#include <string>

#include "backend/state_store.hpp"

namespace wgf::system {

class FileStateStore : public backend::StateStore {
public:
    explicit FileStateStore(std::string state_dir) : dir_(std::move(state_dir)) {}
    backend::Result<plan::Ownership> load() override;
    backend::Status save(const plan::Ownership& owned) override;

private:
    std::string dir_;
};

// The interfaces a state directory records as ours, read without parsing the rest of
// state.json (which lists every peer): a guess, before the fleet file is parsed, at which
// interfaces this node has. Empty when there is no readable record.
std::set<std::string> recorded_interfaces(const std::string& state_dir);

}  // namespace wgf::system
