// The desired state of the last verified one-shot run, kept between runs (state_dir/desired.cache
// in system/) so that a run whose inputs did not change skips parsing, validation and rendering.
// Its bytes are apply/desired_cache's format; the store only keeps them. It never holds a secret.
#pragma once

#include <optional>
#include <string>

#include "backend/status.hpp"

namespace wgf::backend {

class DesiredCacheStore {
public:
    virtual ~DesiredCacheStore() = default;
    // The stored bytes; nullopt when there are none or they cannot be trusted (a file another
    // user owns or may write): such a file is never read, and the next save replaces it.
    virtual std::optional<std::string> load() = 0;
    // Replaces the stored bytes whole (0600): a reader sees the old ones or the new ones.
    virtual Status save(const std::string& bytes) = 0;
};

}  // namespace wgf::backend
