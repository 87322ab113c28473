// Executing an ordered plan through the backends: operations in order, a device's consecutive
// WireGuard operations as one set and consecutive rule operations as one nft batch; stops at
// the first failure and says what was and was not done. Every operation goes to the journal.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apply/backends.hpp"
#include "apply/keys.hpp"
#include "backend/journal.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

using backend::Journal;

struct ApplyOptions {
    // Called every few address changes on a device; false stops the apply (a userspace
    // implementation that died under a burst of changes).
    std::function<bool(const std::string& ifname)> device_alive;
    size_t address_chunk = 16;
};

struct ApplyResult {
    std::vector<std::string> done;       // op lines applied
    std::vector<std::string> not_done;   // op lines not applied (after a failure)
    std::optional<backend::Error> error;
    bool ok() const { return !error; }
};

ApplyResult apply_plan(Backends& b, const plan::Plan& plan, KeyStore& keys, Journal* journal, const ApplyOptions& opts = {});

}  // namespace wgf::apply
