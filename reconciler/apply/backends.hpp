// The machine the engine reads and changes, as backend/'s interfaces: the real ones come from
// cli/ (linux/), the in-memory fakes from backend/fake.hpp.
#pragma once

#include "backend/backend.hpp"

namespace wgf::apply {

struct Backends {
    backend::WireGuard& wg;
    backend::Links& links;
    backend::Sysctls& sysctls;
    backend::Firewall& firewall;
    backend::Files& files;
    // Runs the reload of the HTTP route files' server; none: a planned reload fails with a clear error.
    backend::Commands* commands = nullptr;
};

}  // namespace wgf::apply
