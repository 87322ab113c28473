// The ownership record kept between runs (state_dir/state.json in system/): what the last apply
// made wg-fleet's. It never holds a secret.
#pragma once

#include "backend/status.hpp"
#include "plan/diff.hpp"

namespace wgf::backend {

class StateStore {
public:
    virtual ~StateStore() = default;
    // An empty record when there is none yet (a first run); an error when it cannot be read.
    virtual Result<plan::Ownership> load() = 0;
    // Replaces the record whole: a reader sees the old one or the new one, never a mix.
    virtual Status save(const plan::Ownership& owned) = 0;
};

}  // namespace wgf::backend
