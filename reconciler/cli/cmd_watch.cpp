// watch: the service, wired. The loop is apply::watch; here are its Linux event sources, the
// loader that reads a configuration and builds the machine for it, the reconcile that runs the
// engine under the state directory's lock, and the report to spdlog and systemd's notify
// protocol (READY, STATUS, WATCHDOG, STOPPING). `serve` runs the same service (run_service) with
// its hooks.
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <new>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "apply/watch.hpp"
#include "cli/commands.hpp"
#include "cli/machine.hpp"
#include "cli/service.hpp"
#include "cli/try.hpp"
#include "inputs/desired_cache.hpp"
#include "inputs/lock.hpp"
#include "linux/watch_events.hpp"
#include "plan/rotation.hpp"

namespace wgf::cli {
namespace {

class ServiceReport : public apply::Report {
public:
    ServiceReport(spdlog::logger& log, bool watchdog) : log_(log), watchdog_(watchdog) {}
    void info(const std::string& line) override { log_.info("{}", line); }
    void error(const std::string& line) override { log_.error("{}", line); }
    void status(const std::string& line) override { sd_notifyf(0, "STATUS=%s", line.c_str()); }
    void ready() override { sd_notify(0, "READY=1"); }
    void watchdog() override {
        if (watchdog_) sd_notify(0, "WATCHDOG=1");
    }
    void stopping() override { sd_notify(0, "STOPPING=1"); }

private:
    spdlog::logger& log_;
    bool watchdog_;
};

size_t peer_count(const model::HostState& hs) {
    size_t n = 0;
    for (const auto& [name, w] : hs.interfaces) n += w.peers.size();
    return n;
}

// The try watch has in flight, across reloads (an edit during it loads a new NodeReconcile): its
// verdict, checked at each wake of the loop, and what waits for it to settle.
struct TryInFlight {
    std::optional<VerdictCheck> check;  // our own try, applied by this watch; none: none in flight
    backend::TimePoint next_check{};
    // An edit or reload that came during a pending try (ours or another's): applied by the first
    // run after it settles, as a try under --try.
    std::optional<apply::Trigger> deferred;
    bool rotation_due = false;  // a key switch came during our try: made once it settles
};

// How often watch checks the verdict on its pending try.
constexpr std::chrono::milliseconds kVerdictEvery{500};

// The node converged to one loaded configuration, on the machine built for it.
class NodeReconcile : public apply::Reconcile {
public:
    NodeReconcile(const Globals& g, spdlog::logger& log, apply::Report& report, apply::LiveCache& verified,
                  apply::RotationMemory& rotations, std::vector<std::string>& last_warnings, std::optional<system::KeptRecord>& kept,
                  TryInFlight& flight, std::shared_ptr<const Loaded> loaded, std::string node, const ServiceHooks& hooks)
        : g_(g),
          log_(log),
          report_(report),
          verified_(verified),
          rotations_(rotations),
          flight_(flight),
          last_warnings_(last_warnings),
          loaded_(std::move(loaded)),
          node_(std::move(node)),
          hooks_(hooks),
          machine_(loaded_->cfg()) {
        machine_.journal = std::make_unique<system::FileJournal>(loaded_->cfg().state_dir);
        machine_.state = std::make_unique<system::FileStateStore>(loaded_->cfg().state_dir, &kept);
    }

    void run(apply::Trigger why) override {
        // A userspace implementation that does not daemonize is our child: reap it if it exited,
        // so the run sees it gone (and starts it again) rather than a zombie.
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        foreign_deadline_.reset();
        if (why == apply::Trigger::edit || why == apply::Trigger::reload) defer(why);
        // Our try in flight: this run checks its verdict and does nothing else until it settles
        // (a tick repairs no drift: the try's state is the desired one meanwhile).
        std::optional<inputs::StateLock> lock;
        if (flight_.check) {
            auto next = check_in_flight(lock);
            if (!next) return;
            why = *next;
        }
        const std::string_view word = apply::to_string(why);
        // The state directory's lock, for this run only: `wg-fleet apply` by hand runs between
        // ticks, and a tick waits for it (up to --lock-timeout) or skips with the reason.
        if (!lock) {
            auto got = inputs::StateLock::acquire(loaded_->cfg().state_dir, g_.lock_timeout, [this] { report_.watchdog(); });
            if (!got) {
                log_.error("{} ({}): skipped until the next trigger", got.error().message, word);
                report_.status("waiting for the state directory's lock: " + got.error().message);
                return;
            }
            lock.emplace(std::move(*got));
        }
        const std::string& dir = loaded_->cfg().state_dir;
        // A pending try of another run (an apply --try, a watch stopped during its try): settled
        // once confirmed, rolled back once past its deadline (and this run does nothing else
        // unless an edit waited for it), waited for until then.
        auto pending = load_try(dir);
        if (!pending) {
            log_.error("{}: nothing applied until it is readable", pending.error().message);
            report_.status("error: " + pending.error().message);
            defer_rotation();
            return;
        }
        if (*pending) {
            const apply::TryRecord& t = **pending;
            if (!t.confirmed.empty()) {
                confirm_try(machine_, dir, t, t.confirmed, say());
            } else if (time(nullptr) >= t.deadline) {
                roll_back_try(machine_, dir, t, "its deadline passed without confirmation (found by watch)", say());
                report_.status(fmt::format("rolled back try {}", t.id));
                if (!go_on_after(t)) return;
                why = *flight_.deferred;
                // The devices changed twice since the last verified read.
                verified_ = apply::LiveCache{};
            } else {
                if (waiting_for_ != t.id)
                    log_.info("{}: waiting for it to be confirmed or rolled back ({})", describe_try(t, time(nullptr)), word);
                waiting_for_ = t.id;
                report_.status(describe_try(t, time(nullptr)));
                // Woken at its deadline to roll it back, not at the next tick.
                const auto left = std::chrono::seconds(t.deadline - time(nullptr));
                foreign_deadline_ = std::chrono::steady_clock::now() + left + std::chrono::milliseconds(200);
                defer_rotation();
                return;
            }
        }
        waiting_for_.clear();
        converge(why, std::move(*lock));
    }

    // While our try is pending, when to check its verdict (a key switch waits until it settles);
    // else the next key switch, or the deadline of another run's pending try.
    std::optional<backend::TimePoint> wake_at() const override {
        if (flight_.check) return flight_.next_check;
        if (wake_ && foreign_deadline_) return std::min(*wake_, *foreign_deadline_);
        return wake_ ? wake_ : foreign_deadline_;
    }

private:
    void log_info_lines(const std::string& text) {
        size_t from = 0;
        while (from < text.size()) {
            size_t nl = text.find('\n', from);
            if (nl == std::string::npos) nl = text.size();
            if (nl > from) log_.info("{}", text.substr(from, nl - from));
            from = nl + 1;
        }
    }

    TrySay say() {
        return {.info = [this](const std::string& line) { log_info_lines(line); },
                .error = [this](const std::string& line) { log_.error("{}", line); },
                .color = false,
                .timing = [this](const std::string& line) { log_.debug("{}", line); }};
    }

    // An edit or reload while a try is pending waits for it to settle (said once per try).
    void defer(apply::Trigger why) {
        std::string id;
        if (flight_.check) id = flight_.check->record().id;
        else if (auto t = load_try(loaded_->cfg().state_dir); t && *t && (*t)->confirmed.empty()) id = (*t)->id;
        if (id.empty()) return;
        if (!flight_.deferred)
            log_.info("waiting for try {} to settle before applying the {}", id, why == apply::Trigger::edit ? "edit" : "reload");
        flight_.deferred = why;
    }

    // A run that does not converge the node makes no key switch: a switch time that came waits
    // for the next run that converges (which makes it), instead of waking the loop again and again.
    void defer_rotation() {
        if (wake_ && std::chrono::steady_clock::now() >= *wake_) wake_.reset();
    }

    // One check of our try's verdict, without the lock. Pending: nullopt. Settled (under the
    // lock, left in `lock`): the trigger to converge for now (an edit that waited, a key switch
    // that came), or nullopt.
    std::optional<apply::Trigger> check_in_flight(std::optional<inputs::StateLock>& lock) {
        const std::string& dir = loaded_->cfg().state_dir;
        if (wake_ && std::chrono::steady_clock::now() >= *wake_) {
            flight_.rotation_due = true;
            wake_.reset();
        }
        auto verdict = flight_.check->step(machine_, say());
        const apply::TryRecord t = flight_.check->record();
        if (!verdict) {
            flight_.next_check = std::chrono::steady_clock::now() + kVerdictEvery;
            report_.status(describe_try(t, time(nullptr)));
            return std::nullopt;
        }
        const bool rotation_due = flight_.rotation_due;
        apply::RecentDevices recent = flight_.check->take_recent();
        flight_.check.reset();
        flight_.rotation_due = false;
        auto relock = inputs::StateLock::acquire(dir, g_.lock_timeout, [this] { report_.watchdog(); });
        if (!relock) {
            log_.error("{}: try {} stays pending; the next run after its deadline rolls it back", relock.error().message, t.id);
            return std::nullopt;
        }
        lock.emplace(std::move(*relock));
        // `wg-fleet confirm` may have come in while the lock was taken again.
        if (auto again = load_try(dir); !verdict->confirmed && again && *again && !(*again)->confirmed.empty())
            verdict = Verdict{.confirmed = true, .how = (*again)->confirmed};
        settle(t, *verdict, &recent);
        if (go_on_after(t)) return *flight_.deferred;
        if (rotation_due) return apply::Trigger::rotation;
        return std::nullopt;
    }

    // Whether the edit that waited for the try `t` to settle is to be applied now: not when it
    // gives the configuration the try applied (nothing new; a rolled-back one is held).
    bool go_on_after(const apply::TryRecord& t) {
        if (!flight_.deferred) return false;
        const char* what = *flight_.deferred == apply::Trigger::edit ? "edit" : "reload";
        if (!t.digest.empty() && tried_digest(machine_, apply::render_desired(*loaded_->fleet, node_)) == t.digest) {
            log_.info("the {} during try {} gives the configuration it tried: nothing more to apply", what, t.id);
            flight_.deferred.reset();
            return false;
        }
        log_.info("applying the {} that waited for try {}", what, t.id);
        return true;
    }

    // The try this watch applied: logged, then its verdict is checked at each wake of the loop
    // (without the lock: confirm, plan and status run meanwhile); one whose apply failed is
    // rolled back at once.
    void begin_try(apply::TryRecord t, const apply::RunResult& r) {
        if (r.applied)
            for (const auto& line : r.applied->done) log_.info("try {}: {}", t.id, line);
        if (r.ok()) {
            log_.info("try {} applied: {}; watch goes on meanwhile", t.id, describe_try(t, time(nullptr)));
            report_.status(describe_try(t, time(nullptr)));
            flight_.check.emplace(machine_, loaded_->cfg().state_dir, std::move(t));
            flight_.next_check = std::chrono::steady_clock::now() + kVerdictEvery;
            return;
        }
        if (r.error) log_.error("{}", r.error->message);
        else if (r.applied && !r.applied->ok()) log_.error("apply stopped: {}", r.applied->error->message);
        settle(t, {.confirmed = false, .how = "the try's apply did not converge"});
    }

    // Under the lock: confirmed (the record goes) or rolled back (the hold keeps the state it
    // restores in force).
    // `recent`: the devices as the last check of the verdict read them.
    void settle(const apply::TryRecord& t, const Verdict& verdict, apply::RecentDevices* recent = nullptr) {
        const std::string& dir = loaded_->cfg().state_dir;
        if (verdict.confirmed) {
            confirm_try(machine_, dir, t, verdict.how, say());
            report_.status(fmt::format("converged: try {} confirmed", t.id));
            return;
        }
        roll_back_try(machine_, dir, t, verdict.how, say(), recent);
        // The devices changed twice since the last verified read.
        verified_ = apply::LiveCache{};
        report_.status(fmt::format("rolled back try {}: the last good configuration stays in force", t.id));
    }

    // The file holds a configuration a try rolled back: the state the rollback restored stays in
    // force, drift from it repaired.
    void keep_held(const std::string& dir, std::string_view word) {
        auto held = load_held_record(dir);
        if (!held_logged_) {
            log_.warn(
                "holding the state a rollback restored (drift from it is repaired): the file still holds the configuration "
                "that try rolled back. Edit the file to go on (or run `wg-fleet apply --try` to try it again, `wg-fleet "
                "apply --force-rolled-back` to apply it anyway)");
            if (!held) log_.error("{}: drift from the restored state is not repaired", held.error().message);
            else if (!*held) log_.warn("the hold has no record of the state it restored: drift from it is not repaired");
        }
        held_logged_ = true;
        report_.status("holding the state a rollback restored (edit the file to go on)");
        if (!held || !*held) return;
        if (repair_held(machine_, dir, **held, std::string(word), say()) != 0) verified_ = apply::LiveCache{};
    }

    // The engine's run over the loaded configuration (as a try under --try for an edit), under
    // the state directory's lock, held until it returns.
    void converge(apply::Trigger why, inputs::StateLock /*held*/) {
        const std::string& dir = loaded_->cfg().state_dir;
        const std::string_view word = apply::to_string(why);
        apply::Desired desired = apply::render_desired(*loaded_->fleet, node_);
        const bool edited = why == apply::Trigger::edit || why == apply::Trigger::reload || flight_.deferred.has_value();
        flight_.deferred.reset();
        const bool trying = hooks_.try_seconds > 0 && edited;
        std::string digest;
        if (auto held = load_hold(dir); held || trying) {
            digest = tried_digest(machine_, desired);
            switch (apply::hold_verdict(held, digest, trying, false)) {
                case apply::Hold::none:
                    if (held) clear_hold(dir);
                    held_logged_ = false;
                    break;
                case apply::Hold::held:
                    keep_held(dir, word);
                    defer_rotation();
                    return;
                case apply::Hold::retried: break;
            }
        }
        auto engine = machine_.engine();
        engine.cache = &verified_;
        engine.rotations = &rotations_;
        // Only an edit may start from the devices the last verified run saw; every other trigger
        // reads everything, which is how drift and changes by others are found. A try reads
        // everything: its snapshot is the machine as it is.
        const bool cached = !trying && (why == apply::Trigger::edit || why == apply::Trigger::store);
        const auto read = cached ? apply::LiveRead::cached_devices : apply::LiveRead::full;
        const int64_t now = time(nullptr);
        std::optional<apply::TryRecord> started;
        const std::optional<std::string> keys_dir = desired.keys_dir;
        if (trying)
            engine.before_change = [&](const apply::RunResult& run, const plan::Ownership& owned) -> backend::Status {
                auto t = cli::begin_try(machine_, dir, keys_dir, node_, run, owned,
                                        {.seconds = hooks_.try_seconds,
                                         .probe = "",
                                         .manual = false,
                                         .digest = digest,
                                         .detail = fmt::format(" (watch, {})", word)});
                if (!t) return t.error();
                started = std::move(*t);
                return backend::Status::ok();
            };
        auto r = engine.run(std::move(desired), node_, apply::Mode::apply, now, nullptr, read);
        record_last_run(dir, now, r);
        note_rotations(r.rotation, word);
        if (started) {
            begin_try(std::move(*started), r);
            return;
        }
        report_run(why, r, now);
    }

    void report_run(apply::Trigger why, const apply::RunResult& r, int64_t now) {
        const std::string_view word = apply::to_string(why);
        // A run's warnings (someone else's firewall, an unresolved endpoint) come again at every
        // tick while nothing changes: logged when they change, else at debug level.
        const bool news = r.warnings != last_warnings_;
        for (const auto& w : r.warnings) {
            if (news) log_.warn("{}", w);
            else log_.debug("{}", w);
        }
        last_warnings_ = r.warnings;
        log_.debug("timing: {}", r.timings.str());
        if (r.error) {
            log_.error("{}", r.error->message);
            report_.status("error: " + r.error->message);
            return;
        }
        for (const auto& line : r.applied->done) log_.info("{}: {}", word, line);
        if (!r.applied->ok()) {
            log_.error("apply stopped: {}", r.applied->error->message);
            for (const auto& line : r.applied->not_done) log_.error("not done: {}", line);
            report_.status("apply failed: " + r.applied->error->message);
            return;
        }
        for (const auto& c : r.plan.conflicts) log_.error("{} (remove or move it, or add the marker line to hand it over)", c);
        if (r.converged_with_leftover())
            for (const auto& op : r.leftover->ops) log_.error("bug: still differs after apply: {}", plan::describe(op));
        if (!r.plan.empty() && why == apply::Trigger::tick) log_.warn("drift corrected: {} operation(s)", r.plan.ops.size());
        report_.status(fmt::format("converged: {} peer(s) configured, {} pending", peer_count(r.desired), r.plan.pending.size()));
        if (hooks_.after_run) hooks_.after_run(why, r, *loaded_, now);
    }

    // Logs the key switches of a run and keeps the earliest one pending for the loop, on its
    // clock (steady): the switch time is wall-clock time, converted at the moment of the run.
    void note_rotations(const apply::RotationOutcome& o, std::string_view word) {
        for (const auto& f : o.own_switched)
            log_.info("{}: key switched: fleet {}: the next key is this node's key now, and published", word, f);
        for (const auto& p : o.peers)
            log_.info("{}: peer key swapped: {} on {}: {} -> {}", word, p.node, p.ifname, p.old_key.short_str(), p.new_key.short_str());
        wake_.reset();
        if (!o.next_switch) return;
        const auto wall = std::chrono::system_clock::now();
        const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(*o.next_switch));
        wake_ = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(at - wall);
        log_.debug("next key switch at {}", plan::format_rfc3339(*o.next_switch));
    }

    const Globals& g_;
    spdlog::logger& log_;
    apply::Report& report_;
    apply::LiveCache& verified_;
    std::string waiting_for_;   // the pending try whose wait was logged
    bool held_logged_ = false;  // the hold was logged
    apply::RotationMemory& rotations_;
    TryInFlight& flight_;
    std::optional<backend::TimePoint> wake_;
    std::optional<backend::TimePoint> foreign_deadline_;  // of another run's pending try
    std::vector<std::string>& last_warnings_;             // of the last run, across reloads
    std::shared_ptr<const Loaded> loaded_;
    std::string node_;
    const ServiceHooks& hooks_;
    Machine machine_;
};

class NodeLoader : public apply::Loader {
public:
    NodeLoader(const Globals& g, spdlog::logger& log, apply::Report& report, const ServiceHooks& hooks)
        : g_(g), log_(log), report_(report), hooks_(hooks) {}

    // Stopping with our try pending: it stays recorded, and is settled like a killed apply --try's.
    void stopped() const {
        if (!flight_.check || !in_force_) return;
        const apply::TryRecord& t = flight_.check->record();
        log_.warn(
            "try {} is still pending ({}): it stays recorded in {}; `wg-fleet confirm` keeps it, else the next apply or watch "
            "run after its deadline rolls it back",
            t.id, describe_try(t, time(nullptr)), try_file(in_force_->cfg().state_dir));
    }

    std::variant<std::unique_ptr<apply::Reconcile>, apply::LoadFailure> load(apply::Trigger why) override {
        const char* reason = why == apply::Trigger::start    ? "start"
                             : why == apply::Trigger::reload ? "SIGHUP"
                             : why == apply::Trigger::store  ? "store changed"
                                                             : "file changed";
        try {
            return load_checked(reason, why);
        } catch (const std::bad_alloc&) {
            return apply::LoadFailure{.message = fmt::format("{}: out of memory while loading it ({})", g_.config, reason),
                                      .status = "configuration not loaded"};
        } catch (const std::exception& e) {
            return apply::LoadFailure{.message = fmt::format("{}: cannot load it ({}): {}", g_.config, reason, e.what()),
                                      .status = "configuration not loaded"};
        }
    }

private:
    const Globals& g_;
    spdlog::logger& log_;
    apply::Report& report_;
    const ServiceHooks& hooks_;
    apply::LiveCache verified_;               // the devices as the last verified run left them, across reloads
    apply::RotationMemory rotations_;         // the key switches made, across reloads
    std::vector<std::string> run_warnings_;   // the last run's, across reloads
    std::optional<system::KeptRecord> kept_;  // the ownership record as the last run read or wrote it
    // The configuration in force: an edit of the file is parsed by its edited part against it.
    std::shared_ptr<Loaded> in_force_;
    std::string last_warnings_;  // as the last load logged them
    TryInFlight flight_;         // watch --try's try, across reloads

    std::variant<std::unique_ptr<apply::Reconcile>, apply::LoadFailure> load_checked(const char* reason, apply::Trigger why) {
        std::shared_ptr<Loaded> l = inputs::load(load_options(g_), {}, in_force_.get());
        if (!l->fleet) {
            log_.error("{}", config::render_all(l->diags, l->sources));
            return apply::LoadFailure{.message = fmt::format("{}: invalid ({})", g_.config, reason),
                                      .status = fmt::format("invalid configuration ({} errors)", l->diags.errors())};
        }
        std::string node = this_node(g_);
        if (!l->fleet->index.count(node)) return apply::LoadFailure{.message = not_in_fleets(*l->fleet, node, g_.config), .status = ""};
        if (l->diags.warnings()) {
            std::string warnings = config::render_all(l->diags, l->sources, true, pending_mode(g_));
            // serve loads again on every registration: the same warnings again are not news.
            if (why == apply::Trigger::store && warnings == last_warnings_) log_.debug("{}", warnings);
            else log_.warn("{}", warnings);
            last_warnings_ = std::move(warnings);
        }
        std::string timings = l->timings.str();
        // Everything that can fail comes first (the machine included), so a failure leaves the
        // configuration in force whole.
        auto r = std::make_unique<NodeReconcile>(g_, log_, report_, verified_, rotations_, run_warnings_, kept_, flight_, l,
                                                 std::move(node), hooks_);
        in_force_ = std::move(l);
        log_.info("loaded {} ({})", g_.config, reason);
        log_.debug("timing: {}", timings);
        return r;
    }
};

}  // namespace

std::shared_ptr<spdlog::logger> service_logger(const Globals& g) {
    auto log = spdlog::stderr_color_mt("wg-fleet");
    log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    if (g.verbose) log->set_level(spdlog::level::debug);
    if (g.quiet) log->set_level(spdlog::level::warn);
    return log;
}

int run_service(const Globals& g, int interval_s, spdlog::logger& log, const ServiceHooks& hooks) {
    std::string dropins = g.dropin_dir ? *g.dropin_dir : config::default_dropin_dir(g.config);
    linux_::ConfigWatch files(g.config, dropins);
    // Before any thread starts: the signals are blocked for the whole process (threads inherit
    // the mask), so only the loop receives them.
    linux_::SignalEvents signals;
    linux_::TickTimer timer(std::max(1, interval_s));
    std::vector<int> fds{files.fd(), signals.fd(), timer.fd()};
    if (hooks.nudges) fds.push_back(hooks.nudges->fd());
    linux_::PollClock clock(std::move(fds));
    if (hooks.before_loop && !hooks.before_loop()) return kError;

    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
    ServiceReport report(log, watchdog);
    NodeLoader loader(g, log, report, hooks);
    apply::watch(loader, {.files = files, .signals = signals, .timer = timer, .clock = clock, .nudges = hooks.nudges}, report,
                 {.watchdog = std::chrono::milliseconds(watchdog ? watchdog_usec / 2000 : 0),
                  .watching = fmt::format("watching {} and {}; tick every {}s", g.config, dropins, interval_s)});
    loader.stopped();
    return kOk;
}

int cmd_watch(const Globals& g, int interval_s, int try_s) {
    ServiceHooks hooks;
    hooks.try_seconds = try_s;
    return run_service(g, interval_s, *service_logger(g), hooks);
}

}  // namespace wgf::cli
