// The ownership record as state_dir/state.json (0600, replaced atomically; its format is
// plan/ownership_json.hpp), and the early guess at this node's interfaces read from it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "backend/state_store.hpp"

namespace wgf::system {

// The record as a process last read or wrote it, with what stat(2) said of its file then: a
// service that loads the record on every run parses it again only when the file changed. Every
// writer replaces the file by rename (a new inode) under the state directory's lock.
struct KeptRecord {
    std::string path;
    std::array<int64_t, 7> stamp{};  // device, inode, size, mtime and ctime (s, ns)
    plan::Ownership owned;
};

class FileStateStore : public backend::StateStore {
public:
    // `keep`, when given, outlives the store (a service keeps it across configurations).
    explicit FileStateStore(std::string state_dir, std::optional<KeptRecord>* keep = nullptr) : dir_(std::move(state_dir)), keep_(keep) {}
    backend::Result<plan::Ownership> load() override;
    backend::Status save(const plan::Ownership& owned) override;

private:
    std::string dir_;
    std::optional<KeptRecord>* keep_;
};

// The interfaces a state directory records as ours, read without parsing the rest of
// state.json (which lists every peer): a guess, before the fleet file is parsed, at which
// interfaces this node has. Empty when there is no readable record.
std::set<std::string> recorded_interfaces(const std::string& state_dir);

}  // namespace wgf::system
