// The desired-state cache as state_dir/desired.cache (0600, replaced atomically), and this
// binary's identity for its key.
#pragma once

#include <optional>
#include <string>

#include "backend/desired_cache.hpp"

namespace wgf::system {

class FileDesiredCache : public backend::DesiredCacheStore {
public:
    explicit FileDesiredCache(std::string state_dir) : dir_(std::move(state_dir)) {}
    std::optional<std::string> load() override;
    backend::Status save(const std::string& bytes) override;
    std::string path() const { return dir_ + "/desired.cache"; }

private:
    std::string dir_;
};

// What tells this build of wg-fleet from any other: the ELF build id of the running program,
// else the SHA-256 of /proc/self/exe; empty when neither can be had (then nothing is cached).
std::string build_id();

}  // namespace wgf::system
