// One run at a time per state directory: `apply`, each reconcile of `watch` and `keygen` hold an
// exclusive flock(2) on state_dir/lock for as long as they read, change and record the node.
// The holder writes "PID COMMAND-LINE" into the file after locking, so a run that gives up can
// say who holds the node. The lock is the open file's, not the content's: it goes away with the
// process however it ends (SIGKILL included), and a stale pid left in the file means nothing.
// The descriptor is close-on-exec, so a wireguard-go started during the run never inherits it.
#pragma once

#include <functional>
#include <string>

#include "backend/status.hpp"

namespace wgf::inputs {

class StateLock {
public:
    // Locks state_dir/lock (creating state_dir 0700 and the file 0600 when missing), waiting up
    // to timeout_s seconds (0: one try), calling `waiting` about once a second meanwhile (a
    // service pings its watchdog there). The error names the holder's pid and command line.
    static backend::Result<StateLock> acquire(const std::string& state_dir, int timeout_s, const std::function<void()>& waiting = {});

    StateLock(StateLock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
    StateLock& operator=(StateLock&& o) noexcept;
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;
    ~StateLock();

    const std::string& path() const { return path_; }

private:
    StateLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_ = -1;
    std::string path_;
};

// The lock file's path for a state directory.
std::string lock_path(const std::string& state_dir);

}  // namespace wgf::inputs
