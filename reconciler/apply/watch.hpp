// The service loop of `watch` (and `serve`): converge on start, on every edit of the configuration
// (a burst of writes is one edit), on a reload signal, on a nudge (an input besides the file
// changed), on every tick of the drift timer and at a key rotation's switch time (not at the
// tick after it); stop on a stop signal. An invalid configuration
// is reported and the last good one stays in force. Triggers that arrive while a run is busy stay
// in their source and cause a run after it. The loop knows
// only interfaces: where events come from (backend/events.hpp), how a configuration is loaded
// and converged, and where it reports.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "backend/events.hpp"

namespace wgf::apply {

// store: an input other than the file changed (a nudge: serve's store of enrolled clients).
// rotation: the switch time of a published next key (`wg-fleet rotate`) came.
enum class Trigger { start, edit, reload, tick, store, rotation };

// "start", "edit", "reload", "tick", "store", "rotation": the words the log and journal lines use.
std::string_view to_string(Trigger t);

// One configuration that loaded and checked, bound to what converges the node to it.
class Reconcile {
public:
    virtual ~Reconcile() = default;
    // One converge. The trigger says why: an edit can diff against the live state verified
    // last, a tick re-reads everything.
    virtual void run(Trigger why) = 0;
    // When the node must converge again although nothing else happens: the earliest switch time
    // of a key rotation the last run saw pending (on the loop's clock). None: no such time.
    virtual std::optional<backend::TimePoint> wake_at() const { return std::nullopt; }
};

struct LoadFailure {
    std::string message;  // logged, followed by what stays in force
    std::string status;   // for the service manager, followed by what stays in force; empty: none
};

class Loader {
public:
    virtual ~Loader() = default;
    // The configuration as it is now, or why it cannot be used (reported in detail by the
    // loader). Never throws: nothing in loading a configuration may end the service.
    virtual std::variant<std::unique_ptr<Reconcile>, LoadFailure> load(Trigger why) = 0;
};

// Where the loop reports: the log and the service manager (systemd's notify protocol).
class Report {
public:
    virtual ~Report() = default;
    virtual void info(const std::string& line) = 0;
    virtual void error(const std::string& line) = 0;
    virtual void status(const std::string& line) = 0;
    virtual void ready() = 0;
    virtual void watchdog() = 0;
    virtual void stopping() = 0;
};

struct WatchSources {
    backend::FileChanges& files;
    backend::Signals& signals;
    backend::Timer& timer;
    backend::Clock& clock;
    backend::Nudges* nudges = nullptr;  // none: the file is the only input that changes
};

struct WatchOptions {
    // The watchdog is pinged at least this often while the loop waits; zero: no watchdog.
    std::chrono::milliseconds watchdog{0};
    // Writes in place come in several steps (truncate, write, close), drop-ins in bursts: such an
    // edit is loaded once no change came for `settle`, or after `settle_rounds` such waits. A
    // configuration renamed into place is loaded at once.
    std::chrono::milliseconds settle{50};
    int settle_rounds = 5;
    std::string watching;  // logged once ready ("watching FILE and DIR; tick every Ns")
};

// Runs until a stop signal.
void watch(Loader& loader, const WatchSources& sources, Report& report, const WatchOptions& options);

}  // namespace wgf::apply
