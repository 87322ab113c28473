// The event sources of `watch` on Linux: inotify on the configuration's directory and the
// drop-in directory (editors replace files by rename, so the file itself cannot be watched),
// signalfd for SIGHUP/SIGTERM/SIGINT, timerfd for the drift ticks, eventfd for nudges, and poll(2) over their
// descriptors as the clock that waits.
#pragma once

#include <string>
#include <vector>

#include "backend/events.hpp"
#include "model/fd.hpp"

namespace wgf::linux_ {

class ConfigWatch : public backend::FileChanges {
public:
    // Throws std::system_error when inotify is not available.
    ConfigWatch(const std::string& config, const std::string& dropins);
    backend::FileChange take() override;
    int fd() const { return fd_.fd; }

private:
    model::Fd fd_;
    int config_wd = -1;
    std::string config_name, dropin_dir, dropin_name;
};

// Blocks SIGHUP, SIGTERM and SIGINT for the process and receives them here instead.
class SignalEvents : public backend::Signals {
public:
    SignalEvents();
    std::optional<backend::Signal> take() override;
    int fd() const { return fd_.fd; }

private:
    model::Fd fd_;
};

class TickTimer : public backend::Timer {
public:
    explicit TickTimer(int interval_s);
    bool take() override;
    int fd() const { return fd_.fd; }

private:
    model::Fd fd_;
};

// An eventfd: nudge() from any thread (serve's HTTP handlers after a commit) wakes the clock.
class EventNudges : public backend::Nudges {
public:
    EventNudges();
    void nudge();
    bool take() override;
    int fd() const { return fd_.fd; }

private:
    model::Fd fd_;
};

// CLOCK_MONOTONIC; waits with poll(2) on the given descriptors.
class PollClock : public backend::Clock {
public:
    explicit PollClock(std::vector<int> fds) : fds_(std::move(fds)) {}
    backend::TimePoint now() override;
    void wait_until(backend::TimePoint deadline) override;

private:
    std::vector<int> fds_;
};

}  // namespace wgf::linux_
