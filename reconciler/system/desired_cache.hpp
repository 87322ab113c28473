// The desired-state cache as state_dir/desired.cache (0600, replaced atomically), and this
// binary's identity for its key.
#pragma once

#include <cstdint>

#include <optional>
#include <string>

#include "backend/desired_cache.hpp"

namespace wgf::system {

// A file this user alone could have written (a regular file it owns, not writable by group or
// others, not a link), read whole; nullopt when it is absent, not such a file, larger than
// `max_size` or unreadable. What a run does as root may rest on such a file, never on another.
std::optional<std::string> read_trusted(const std::string& path, size_t max_size = SIZE_MAX);

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
