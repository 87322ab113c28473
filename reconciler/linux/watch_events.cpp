#include "linux/watch_events.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace wgf::linux_ {
namespace {

constexpr uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;

int checked(int fd, const char* what) {
    if (fd < 0) throw std::system_error(errno, std::generic_category(), what);
    return fd;
}

}  // namespace

ConfigWatch::ConfigWatch(const std::string& config, const std::string& dropins)
    : fd_(checked(inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")) {
    std::filesystem::path p(config);
    std::string config_dir = p.parent_path().empty() ? "." : p.parent_path().string();
    config_name = p.filename().string();
    dropin_dir = dropins;
    dropin_name = std::filesystem::path(dropin_dir).filename().string();
    config_wd = inotify_add_watch(fd_.fd, config_dir.c_str(), kDirEvents);
    // The drop-in directory may not exist yet: its creation is seen in its parent (the config's
    // directory) and the watch added then.
    inotify_add_watch(fd_.fd, dropin_dir.c_str(), kDirEvents);
}

backend::FileChange ConfigWatch::take() {
    alignas(struct inotify_event) char buf[8192];
    bool hit = false, only_replaced = true;
    ssize_t n;
    while ((n = read(fd_.fd, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + n;) {
            auto* ev = reinterpret_cast<struct inotify_event*>(p);
            std::string name = ev->len ? ev->name : "";
            if (name == config_name || name.ends_with(".yaml") || name == dropin_name) {
                hit = true;
                if (!(ev->wd == config_wd && name == config_name && (ev->mask & IN_MOVED_TO))) only_replaced = false;
            }
            if (name == dropin_name && (ev->mask & (IN_CREATE | IN_MOVED_TO))) inotify_add_watch(fd_.fd, dropin_dir.c_str(), kDirEvents);
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
    if (!hit) return backend::FileChange::none;
    return only_replaced ? backend::FileChange::replaced : backend::FileChange::written;
}

SignalEvents::SignalEvents() : fd_(-1) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    fd_.fd = checked(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd");
}

std::optional<backend::Signal> SignalEvents::take() {
    signalfd_siginfo si{};
    if (read(fd_.fd, &si, sizeof si) != sizeof si) return std::nullopt;
    int signo = static_cast<int>(si.ssi_signo);
    return backend::Signal{.kind = signo == SIGHUP ? backend::Signal::Kind::reload : backend::Signal::Kind::stop, .name = strsignal(signo)};
}

TickTimer::TickTimer(int interval_s) : fd_(checked(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create")) {
    itimerspec spec{};
    spec.it_interval.tv_sec = interval_s;
    spec.it_value.tv_sec = interval_s;
    if (timerfd_settime(fd_.fd, 0, &spec, nullptr) != 0) throw std::system_error(errno, std::generic_category(), "timerfd_settime");
}

bool TickTimer::take() {
    uint64_t ticks = 0;
    return read(fd_.fd, &ticks, sizeof ticks) == sizeof ticks && ticks > 0;
}

EventNudges::EventNudges() : fd_(checked(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd")) {}

void EventNudges::nudge() {
    uint64_t one = 1;
    // Fails only when the counter would overflow: it is pending then anyway.
    [[maybe_unused]] ssize_t n = write(fd_.fd, &one, sizeof one);
}

bool EventNudges::take() {
    uint64_t n = 0;
    return read(fd_.fd, &n, sizeof n) == sizeof n && n > 0;
}

backend::TimePoint PollClock::now() { return std::chrono::steady_clock::now(); }

void PollClock::wait_until(backend::TimePoint deadline) {
    std::vector<pollfd> fds;
    for (int fd : fds_) fds.push_back({.fd = fd, .events = POLLIN, .revents = 0});
    int timeout = -1;
    if (deadline != backend::TimePoint::max()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now()).count();
        timeout = static_cast<int>(std::clamp<decltype(left)>(left, 0, 1'000'000'000));
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
}

}  // namespace wgf::linux_
