#include "apply/watch.hpp"

#include <utility>

namespace wgf::apply {

std::string_view to_string(Trigger t) {
    switch (t) {
        case Trigger::start: return "start";
        case Trigger::edit: return "edit";
        case Trigger::reload: return "reload";
        case Trigger::tick: return "tick";
        case Trigger::store: return "store";
        case Trigger::rotation: return "rotation";
    }
    return "?";
}

namespace {

class Loop {
public:
    Loop(Loader& loader, const WatchSources& sources, Report& report, const WatchOptions& options)
        : loader_(loader), src_(sources), report_(report), o_(options) {}

    void run() {
        if (load(Trigger::start)) converge(Trigger::start);
        report_.ready();
        report_.info(o_.watching);
        for (;;) {
            wait(wake_at().value_or(backend::TimePoint::max()));
            // Signals first: a stop must not wait for a reconcile of pending edits.
            while (auto s = src_.signals.take()) {
                if (s->kind == backend::Signal::Kind::stop) {
                    report_.info("exiting on " + s->name);
                    report_.stopping();
                    return;
                }
                if (load(Trigger::reload)) converge(Trigger::reload);
            }
            if (auto change = src_.files.take(); change != backend::FileChange::none) {
                if (change == backend::FileChange::written) settle();
                if (load(Trigger::edit)) converge(Trigger::edit);
            }
            if (src_.nudges && src_.nudges->take() && load(Trigger::store)) converge(Trigger::store);
            if (src_.timer.take()) converge(Trigger::tick);
            // A switch time that came (and that no run above already acted on).
            if (auto due = wake_at(); due && src_.clock.now() >= *due) converge(Trigger::rotation);
        }
    }

private:
    Loader& loader_;
    const WatchSources& src_;
    Report& report_;
    const WatchOptions& o_;
    std::unique_ptr<Reconcile> in_force_;  // the last good configuration
    // The configuration the last load replaced: dropping one of a large fleet frees a lot, so it
    // waits until the new one has run (an edit is live first).
    std::unique_ptr<Reconcile> retired_;

    std::optional<backend::TimePoint> wake_at() const { return in_force_ ? in_force_->wake_at() : std::nullopt; }

    // A failed load leaves the configuration in force as it was.
    bool load(Trigger why) {
        auto r = loader_.load(why);
        if (auto* ok = std::get_if<std::unique_ptr<Reconcile>>(&r)) {
            retired_ = std::exchange(in_force_, std::move(*ok));
            return true;
        }
        const auto& f = std::get<LoadFailure>(r);
        report_.error(f.message + "; " + (in_force_ ? "the last good configuration stays in force" : "nothing applied"));
        if (!f.status.empty())
            report_.status(f.status + "; " + (in_force_ ? "last good configuration in force" : "waiting for a valid one"));
        return false;
    }

    void converge(Trigger why) {
        if (in_force_) in_force_->run(why);
        retired_.reset();
    }

    void wait(backend::TimePoint deadline) {
        if (o_.watchdog.count() > 0) deadline = std::min(deadline, src_.clock.now() + o_.watchdog);
        src_.clock.wait_until(deadline);
        if (o_.watchdog.count() > 0) report_.watchdog();
    }

    // Takes further changes until none came for one settle period, or until the configuration
    // is renamed into place (complete: nothing to wait for).
    void settle() {
        for (int i = 0; i < o_.settle_rounds; ++i) {
            wait(src_.clock.now() + o_.settle);
            if (src_.files.take() != backend::FileChange::written) return;
        }
    }
};

}  // namespace

void watch(Loader& loader, const WatchSources& sources, Report& report, const WatchOptions& options) {
    Loop(loader, sources, report, options).run();
}

}  // namespace wgf::apply
