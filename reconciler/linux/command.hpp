// Running a configured command (caddy_reload): `/bin/sh -c COMMAND` in the calling thread's
// network namespace, its output collected for the error message.
#pragma once

#include <string>

#include "backend/backend.hpp"

namespace wgf::linux_ {

class ShellCommands : public backend::Commands {
public:
    // Waits for the command up to timeout_ms, then kills it (a reload that hangs must not hold
    // the apply, and watch, forever).
    explicit ShellCommands(int timeout_ms = 60'000) : timeout_ms_(timeout_ms) {}
    backend::Status run(const std::string& command) override;

private:
    int timeout_ms_;
};

}  // namespace wgf::linux_
