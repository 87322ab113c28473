// The userspace WireGuard process behind a UAPI socket: which command starts it, starting it as
// wg-quick does, finding the process that serves a socket, and waiting for it to go.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"

namespace wgf::linux_ {

// The command that starts a userspace implementation, split into words (wg-quick leaves the
// variable unquoted, so "boringtun-cli --disable-drop-privileges" works the same here). In
// order: `configured` (the YAML key `userspace:`), WG_FLEET_USERSPACE_IMPLEMENTATION,
// WG_QUICK_USERSPACE_IMPLEMENTATION, wireguard-go found in PATH. ENOENT when none applies.
backend::Result<std::vector<std::string>> resolve_userspace_command(const std::optional<std::string>& configured);

// Runs `argv... ifname` in a new session (in the calling thread's network namespace), waits
// until the process answers on ifname's socket. wireguard-go daemonizes itself: its first
// process exits 0 once the daemon holds the tun and the socket, and the daemon outlives us.
// Errors name the command and quote its output (exit status, or no answer within timeout_ms).
backend::Status start_userspace(const std::vector<std::string>& argv, const std::string& ifname, const std::string& socket_dir,
                                int timeout_ms);

// The process serving ifname's socket, found by the peer of a connection to it. SO_PEERCRED
// alone is not enough: wireguard-go creates the listening socket and then re-executes itself as
// a daemon, so SO_PEERCRED names the parent that already exited. Asks sock_diag for the peer
// socket's inode and finds the process holding it, checking SO_PEERCRED's pid first.
std::optional<pid_t> uapi_server_pid(const std::string& socket_dir, const std::string& ifname);

// pid exists and is not a zombie.
bool process_running(pid_t pid);

// pid lives in the calling thread's network namespace.
bool process_in_our_netns(pid_t pid);

// Waits up to timeout_ms until ifname's socket stops answering; a socket left behind by a
// process that died without cleaning up is removed, as wg does. False when it still answers.
bool wait_userspace_gone(const std::string& socket_dir, const std::string& ifname, int timeout_ms);

}  // namespace wgf::linux_
