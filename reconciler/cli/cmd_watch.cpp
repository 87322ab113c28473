// watch: the service. Converges on start, on every change of the config file or a drop-in
// (inotify on their directories, since editors replace files by rename), on every timer tick
// (drift correction, DNS re-resolution, a userspace WireGuard that died) and on SIGHUP. An
// invalid edit is reported and the last good configuration stays in force. SIGTERM/SIGINT exit
// cleanly. Speaks systemd's notify protocol: READY, STATUS, WATCHDOG.
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <new>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "apply/lock.hpp"
#include "cli/machine.hpp"

namespace wgf::cli {
namespace {

struct Watcher {
    int fd = -1;
    std::string config_dir, config_name, dropin_dir;

    Watcher(const std::string& config, const std::string& dropins) {
        std::filesystem::path p(config);
        config_dir = p.parent_path().empty() ? "." : p.parent_path().string();
        config_name = p.filename().string();
        dropin_dir = dropins;
        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
        inotify_add_watch(fd, config_dir.c_str(), mask);
        // The drop-in directory may appear later; its parent is watched for that (same dir as the config).
        inotify_add_watch(fd, dropin_dir.c_str(), mask);
    }
    ~Watcher() {
        if (fd >= 0) close(fd);
    }

    // Drains pending events; true when one concerns the config file or the drop-in directory.
    bool relevant() {
        alignas(struct inotify_event) char buf[8192];
        bool hit = false;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            for (char* p = buf; p < buf + n;) {
                auto* ev = reinterpret_cast<struct inotify_event*>(p);
                std::string name = ev->len ? ev->name : "";
                std::string dropin_name = std::filesystem::path(dropin_dir).filename().string();
                if (name == config_name || name.ends_with(".yaml") || name == dropin_name) hit = true;
                if (name == dropin_name && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
                    inotify_add_watch(fd, dropin_dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE);
                p += sizeof(struct inotify_event) + ev->len;
            }
        }
        return hit;
    }
};

int make_signalfd() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int make_timer(int interval_s) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    itimerspec spec{};
    spec.it_interval.tv_sec = interval_s;
    spec.it_value.tv_sec = interval_s;
    timerfd_settime(fd, 0, &spec, nullptr);
    return fd;
}

}  // namespace

int cmd_watch(const Globals& g, int interval_s) {
    auto log = spdlog::stderr_color_mt("wg-fleet");
    log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    if (g.verbose) log->set_level(spdlog::level::debug);
    if (g.quiet) log->set_level(spdlog::level::warn);

    std::string dropins = g.dropin_dir ? *g.dropin_dir : config::default_dropin_dir(g.config);
    Watcher watcher(g.config, dropins);
    int sfd = make_signalfd();
    int tfd = make_timer(std::max(1, interval_s));

    std::unique_ptr<Loaded> good;   // the last good configuration, in force
    std::unique_ptr<Machine> machine;
    std::string node;
    apply::LiveCache verified;  // the devices as the last verified run left them
    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;

    auto load_new = [&](const char* why) {
        Globals quiet = g;
        quiet.quiet = 1;  // diagnostics go through the log below, not raw to stderr twice
        auto l = load(quiet);
        if (!l->fleet) {
            log->error("{}", config::render_all(l->diags, l->sources));
            log->error("{}: invalid ({}); {}", g.config, why, good ? "the last good configuration stays in force" : "nothing applied");
            sd_notifyf(0, "STATUS=invalid configuration (%zu errors); %s", l->diags.errors(),
                       good ? "last good configuration in force" : "waiting for a valid one");
            return;
        }
        std::string n = this_node(g);
        if (!l->fleet->index.count(n)) {
            log->error("node '{}' is in no fleet of {}; {}", n, g.config, good ? "the last good configuration stays in force" : "nothing applied");
            return;
        }
        if (l->diags.warnings()) log->warn("{}", config::render_all(l->diags, l->sources));
        // Everything that can fail comes first, so a failure leaves the last good state whole.
        auto m = std::make_unique<Machine>(l->cfg());
        m->journal = std::make_unique<system::FileJournal>(l->cfg().state_dir);
        node = std::move(n);
        machine = std::move(m);
        good = std::move(l);
        log->info("loaded {} ({})", g.config, why);
        log->debug("timing: {}", good->timings.str());
    };
    // Nothing in reading or checking a configuration may end the service: whatever goes wrong
    // (out of memory included), the last good configuration stays in force.
    auto reload = [&](const char* why) {
        const char* keep = good ? "the last good configuration stays in force" : "nothing applied";
        try {
            load_new(why);
            return;
        } catch (const std::bad_alloc&) {
            log->error("{}: out of memory while loading it ({}); {}", g.config, why, keep);
        } catch (const std::exception& e) {
            log->error("{}: cannot load it ({}): {}; {}", g.config, why, e.what(), keep);
        }
        sd_notifyf(0, "STATUS=configuration not loaded; %s", good ? "last good configuration in force" : "waiting for a valid one");
    };

    auto converge = [&](const char* why) {
        // A userspace implementation that does not daemonize is our child: reap it if it exited,
        // so the tick below sees it gone (and starts it again) rather than a zombie.
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        if (!good) return;
        // The state directory's lock, for this reconcile only: `wg-fleet apply` by hand runs
        // between ticks, and a tick waits for it (up to --lock-timeout) or skips with the reason.
        auto lock = apply::StateLock::acquire(good->cfg().state_dir, g.lock_timeout);
        if (!lock) {
            log->error("{} ({}): skipped until the next trigger", lock.error().message, why);
            sd_notifyf(0, "STATUS=waiting for the state directory's lock: %s", lock.error().message.c_str());
            return;
        }
        auto engine = machine->engine();
        engine.cache = &verified;
        const auto trigger = std::string_view(why) == "edit" ? apply::Trigger::edit : apply::Trigger::full;
        auto r = engine.run(*good->fleet, node, apply::Mode::apply, time(nullptr), nullptr, trigger);
        for (const auto& w : r.warnings) log->warn("{}", w);
        log->debug("timing: {}", r.timings.str());
        if (r.error) {
            log->error("{}", r.error->message);
            sd_notifyf(0, "STATUS=error: %s", r.error->message.c_str());
            return;
        }
        for (const auto& line : r.applied->done) log->info("{}: {}", why, line);
        if (!r.applied->ok()) {
            log->error("apply stopped: {}", r.applied->error->message);
            for (const auto& line : r.applied->not_done) log->error("not done: {}", line);
            sd_notifyf(0, "STATUS=apply failed: %s", r.applied->error->message.c_str());
            return;
        }
        for (const auto& c : r.plan.conflicts) log->error("{} (remove or move it, or add the marker line to hand it over)", c);
        if (r.converged_with_leftover())
            for (const auto& op : r.leftover->ops) log->error("bug: still differs after apply: {}", plan::describe(op));
        if (!r.plan.empty() && std::string_view(why) == "tick") log->warn("drift corrected: {} operation(s)", r.plan.ops.size());
        sd_notifyf(0, "STATUS=converged: %zu peer(s) configured, %zu pending", r.desired.interfaces.empty() ? 0 : [&] {
            size_t n = 0;
            for (const auto& [i, w] : r.desired.interfaces) n += w.peers.size();
            return n;
        }(), r.plan.pending.size());
    };

    reload("start");
    converge("start");
    sd_notify(0, "READY=1");
    log->info("watching {} and {}; tick every {}s", g.config, dropins, interval_s);

    pollfd fds[3] = {{watcher.fd, POLLIN, 0}, {sfd, POLLIN, 0}, {tfd, POLLIN, 0}};
    for (;;) {
        int timeout = watchdog ? static_cast<int>(watchdog_usec / 2000) : -1;
        int n = poll(fds, 3, timeout);
        if (watchdog) sd_notify(0, "WATCHDOG=1");
        if (n < 0 && errno != EINTR) {
            log->error("poll: {}", std::strerror(errno));
            return kError;
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si{};
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    reload("SIGHUP");
                    converge("reload");
                } else {
                    log->info("exiting on {}", strsignal(static_cast<int>(si.ssi_signo)));
                    sd_notify(0, "STOPPING=1");
                    return kOk;
                }
            }
        }
        if (fds[0].revents & POLLIN) {
            bool hit = watcher.relevant();
            // Editors write in several steps (truncate, write, rename): let them settle.
            for (int i = 0; i < 5; ++i) {
                pollfd one{watcher.fd, POLLIN, 0};
                if (poll(&one, 1, 50) <= 0) break;
                hit = watcher.relevant() || hit;
            }
            if (hit) {
                reload("file changed");
                converge("edit");
            }
        }
        if (fds[2].revents & POLLIN) {
            uint64_t ticks;
            if (read(tfd, &ticks, sizeof ticks) > 0) converge("tick");
        }
    }
}

}  // namespace wgf::cli
