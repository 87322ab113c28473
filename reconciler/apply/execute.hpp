// Executing an ordered plan through the backends: operations in order, a device's consecutive
// WireGuard operations as one set and consecutive rule operations as one nft batch; stops at
// the first failure and says what was and was not done. Every operation goes to the journal.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apply/backends.hpp"
#include "apply/keys.hpp"
#include "backend/journal.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

using backend::Journal;

struct ApplyResult {
    std::vector<std::string> done;      // op lines applied
    std::vector<std::string> not_done;  // op lines not applied (after a failure)
    std::optional<backend::Error> error;
    bool ok() const { return !error; }
};

// Pacing that a backend needs (a userspace WireGuard under a burst of address changes) is the
// backend's own: linux/userspace_pacing.hpp.
ApplyResult apply_plan(Backends& b, const plan::Plan& plan, KeyStore& keys, Journal* journal);

}  // namespace wgf::apply
