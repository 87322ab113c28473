// What `watch` waits on, as interfaces: changes of the configuration, signals, the drift timer,
// changes of other inputs (nudges) and a clock that also does the waiting (waiting is "until something happens or until then").
// The loop (apply/watch) is tested on fakes; linux/watch_events implements them with inotify,
// signalfd, timerfd and poll.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace wgf::backend {

using TimePoint = std::chrono::steady_clock::time_point;

// What the notifications taken at once say about the configuration.
enum class FileChange {
    none,
    // The configuration file or a drop-in was written, created or removed: more may follow
    // (truncate, write, close; several drop-ins), so the loop waits for the burst to end.
    written,
    // Only the configuration file was renamed into place: a rename is atomic, so the file is
    // complete and can be loaded at once.
    replaced,
};

class FileChanges {
public:
    virtual ~FileChanges() = default;
    // Takes every pending notification and says what they concern.
    virtual FileChange take() = 0;
};

struct Signal {
    enum class Kind { reload, stop };
    Kind kind = Kind::reload;
    std::string name;  // for the log ("Hangup", "Terminated")
};

class Signals {
public:
    virtual ~Signals() = default;
    // The next pending signal, one at a time.
    virtual std::optional<Signal> take() = 0;
};

class Timer {
public:
    virtual ~Timer() = default;
    // True when the interval elapsed (once or more) since the last take.
    virtual bool take() = 0;
};

// Desired state that lives outside the configuration's files changed (serve's store of enrolled
// clients): the configuration is loaded again at once, without settling (the writer committed).
class Nudges {
public:
    virtual ~Nudges() = default;
    // True when a change was signalled (once or more) since the last take.
    virtual bool take() = 0;
};

class Clock {
public:
    virtual ~Clock() = default;
    virtual TimePoint now() = 0;
    // Returns when a source may have something to take, or once `deadline` has passed
    // (TimePoint::max(): no deadline).
    virtual void wait_until(TimePoint deadline) = 0;
};

}  // namespace wgf::backend
