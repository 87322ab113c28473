// What the commands and processes this layer starts share: deadlines on the monotonic clock, the
// child's side of fork and exec, and how a child's end is told.
#pragma once

#include <cstdint>
#include <string>

namespace wgf::linux_ {

// Milliseconds on the monotonic clock, immune to wall-clock steps.
int64_t monotonic_ms();

// In a forked child, before execve (async-signal-safe calls only): the default dispositions and an
// empty signal mask (both survive exec, and wg-fleet's are not the program's), stdin from
// /dev/null, stdout and stderr to `out` (/dev/null when out < 0), and every other descriptor of
// ours closed on exec (netlink sockets, files).
void prepare_exec_child(int out);

// "exited with status 1", "was killed by SIGKILL": a waitpid status, for error messages.
std::string describe_exit(int status);

}  // namespace wgf::linux_
