// Per-device choice between the kernel and a userspace implementation, and starting the latter.
#include "linux/wg_select.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

extern char** environ;

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;

namespace {

std::vector<std::string> split_words(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
        size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
}

bool executable_file(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> find_in_path(const std::string& name) {
    if (name.find('/') != std::string::npos) return executable_file(name) ? std::optional(name) : std::nullopt;
    const char* env = std::getenv("PATH");
    std::string path = env && *env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        std::string dir = path.substr(start, end - start);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (executable_file(candidate)) return candidate;
        start = end + 1;
    }
    return std::nullopt;
}

void sleep_ms(int ms) {
    struct timespec ts {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, nullptr);
}

int64_t now_ms() {
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A file for the command's output that nobody else can see and that cannot block the writer,
// as a pipe would once we stop reading it (a foreground implementation keeps writing).
int output_file() {
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char name[] = "/tmp/wg-fleet-userspace-XXXXXX";
    fd = mkostemp(name, O_CLOEXEC);
    if (fd >= 0) unlink(name);
    return fd;
}

// The last few lines of what the command printed, without wireguard-go's banner box.
std::string output_tail(int fd) {
    if (fd < 0) return {};
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    std::vector<std::string> lines;
    std::string_view all(buf, static_cast<size_t>(n));
    size_t pos = 0;
    while (pos < all.size()) {
        size_t nl = all.find('\n', pos);
        if (nl == std::string_view::npos) nl = all.size();
        std::string_view l = all.substr(pos, nl - pos);
        pos = nl + 1;
        while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.remove_suffix(1);
        while (!l.empty() && l.front() == ' ') l.remove_prefix(1);
        if (l.empty() || l.find("\u2502") != std::string_view::npos || l.find("\u2500") != std::string_view::npos) continue;
        lines.emplace_back(l);
    }
    if (lines.size() > 3) lines.erase(lines.begin(), lines.end() - 3);
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : " | ") + l;
    return out;
}

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const char* name = sigabbrev_np(WTERMSIG(status));
        return std::string("was killed by SIG") + (name ? name : std::to_string(WTERMSIG(status)));
    }
    return "stopped";
}

}  // namespace

bool kernel_lacks_wireguard(int err) {
    // RTM_NEWLINK kind wireguard without the module: EOPNOTSUPP ("Unknown device type"); the
    // others come from kernels or backends that fail earlier (no genl family, no netlink).
    return err == EOPNOTSUPP || err == ENODEV || err == EAFNOSUPPORT || err == EPROTONOSUPPORT ||
           err == ENOSYS || err == ENOENT;
}

Result<std::vector<std::string>> resolve_userspace_command(const std::optional<std::string>& configured) {
    if (configured) {
        auto words = split_words(*configured);
        if (words.empty()) return errno_error(EINVAL, "the `userspace:` command is empty");
        return words;
    }
    // Empty variables count as unset, as wg-quick's ${VAR:-wireguard-go} does.
    for (const char* var : {"WG_FLEET_USERSPACE_IMPLEMENTATION", "WG_QUICK_USERSPACE_IMPLEMENTATION"}) {
        const char* v = std::getenv(var);
        if (v && *v) {
            auto words = split_words(v);
            if (!words.empty()) return words;
        }
    }
    if (find_in_path("wireguard-go")) return std::vector<std::string>{"wireguard-go"};
    return errno_error(ENOENT,
                       "no userspace WireGuard implementation: wireguard-go is not in PATH (install it, or name a "
                       "command with `userspace:` or WG_FLEET_USERSPACE_IMPLEMENTATION)");
}

Status start_userspace(const std::vector<std::string>& argv, const std::string& ifname, const std::string& socket_dir,
                       int timeout_ms) {
    std::vector<std::string> full = argv;
    full.push_back(ifname);
    const std::string what = "start userspace WireGuard `" + join(full) + "`";
    if (argv.empty()) return errno_error(EINVAL, what + ": no command");
    auto exe = find_in_path(argv[0]);
    if (!exe) return errno_error(ENOENT, what + ": " + argv[0] + " not found in PATH");

    int out = output_file();
    struct CloseOut {
        int fd;
        ~CloseOut() {
            if (fd >= 0) close(fd);
        }
    } close_out{out};
    int exec_err[2];
    if (pipe2(exec_err, O_CLOEXEC) != 0) return errno_error(errno, what + ": pipe");

    // Everything the child needs is built before fork: after it only async-signal-safe calls.
    std::vector<char*> cargv;
    for (auto& w : full) cargv.push_back(w.data());
    cargv.push_back(nullptr);
    const char* path = exe->c_str();

    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(exec_err[0]);
        close(exec_err[1]);
        return errno_error(err, what + ": fork");
    }
    if (pid == 0) {
        // A session of its own: the daemon must outlive wg-fleet and not share its terminal's
        // signals. Signal mask and ignored signals survive exec, so reset them.
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT}) signal(sig, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(out >= 0 ? out : devnull, 1);
        dup2(out >= 0 ? out : devnull, 2);
        // Our other descriptors (netlink sockets, files) must not live on in the daemon.
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(path, cargv.data(), environ);
        int err = errno;
        ssize_t ignored = write(exec_err[1], &err, sizeof err);
        (void)ignored;
        _exit(127);
    }
    close(exec_err[1]);
    int child_err = 0;
    ssize_t got;
    do got = read(exec_err[0], &child_err, sizeof child_err);
    while (got < 0 && errno == EINTR);
    close(exec_err[0]);
    if (got == static_cast<ssize_t>(sizeof child_err)) {
        waitpid(pid, nullptr, 0);
        return errno_error(child_err, what + ": exec " + *exe);
    }

    const int64_t deadline = now_ms() + timeout_ms;
    bool exited = false;
    for (;;) {
        if (!exited) {
            int status = 0;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                // wireguard-go's first process exits 0 once the daemon it started holds the socket.
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    std::string tail = output_tail(out);
                    // Its own exit status and words say more than any errno would.
                    return Error{EIO, what + ": " + describe_exit(status) + (tail.empty() ? "" : ": " + tail)};
                }
            }
        }
        // A foreground implementation stays our child; it is reaped when wg-fleet exits.
        if (uapi_ping(socket_dir, ifname, 1000)) return Status::ok();
        if (now_ms() >= deadline) break;
        sleep_ms(20);
    }
    if (!exited) {
        kill(pid, SIGTERM);
        for (int i = 0; i < 50 && waitpid(pid, nullptr, WNOHANG) == 0; ++i) sleep_ms(20);
        if (waitpid(pid, nullptr, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
    Error e = errno_error(ETIMEDOUT, what + ": no answer on " + socket_dir + "/" + ifname + ".sock within " +
                                         std::to_string(timeout_ms) + " ms");
    if (std::string tail = output_tail(out); !tail.empty()) e.message += "; it printed: " + tail;
    return e;
}

bool userspace_alive(const std::string& ifname, const std::string& socket_dir) {
    int fd = uapi_connect(socket_dir, ifname);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    return fd != -ECONNREFUSED && fd != -ENOENT;
}

std::optional<pid_t> userspace_pid(const std::string& ifname, const std::string& socket_dir) {
    return uapi_server_pid(socket_dir, ifname);
}

WgSelect::WgSelect(std::unique_ptr<backend::WireGuard> kernel, UapiOptions options)
    : kernel_(std::move(kernel)), uapi_(std::move(options)) {}

WgSelect::Transport WgSelect::transport_for(const std::string& ifname) const {
    return uapi_.has_socket(ifname) ? Transport::userspace : Transport::kernel;
}

backend::WireGuard* WgSelect::pick(const std::string& ifname) {
    if (transport_for(ifname) == Transport::userspace) {
        // As `wg` does: a socket that refuses connections was left by a process that is gone.
        // Remove it and ask the kernel, which may serve a device of that name. Any other
        // failure to connect is the userspace path's to report. (As with `wg`, a daemon that
        // replaces the socket between the refused connect and the unlink would lose it; only
        // wg-fleet starts daemons for its devices, and one run at a time.)
        int fd = uapi_connect(uapi_.options().socket_dir, ifname);
        if (fd >= 0) close(fd);
        if (fd != -ECONNREFUSED) return &uapi_;
        unlink(uapi_.socket_path(ifname).c_str());
    }
    return kernel_.get();
}

std::vector<std::string> WgSelect::list_devices() {
    std::set<std::string> all;
    if (kernel_)
        for (auto& n : kernel_->list_devices()) all.insert(std::move(n));
    for (auto& n : uapi_.list_devices()) all.insert(std::move(n));
    return {all.begin(), all.end()};
}

Result<backend::WgDeviceLive> WgSelect::read_device(const std::string& ifname) {
    if (auto* b = pick(ifname)) return b->read_device(ifname);
    return errno_error(ENODEV, "read WireGuard device " + ifname + " (no UAPI socket " + uapi_.socket_path(ifname) +
                                   " and no kernel WireGuard)");
}

Status WgSelect::set_device(const backend::WgDeviceChange& change) {
    if (auto* b = pick(change.ifname)) return b->set_device(change);
    return errno_error(ENODEV, "set WireGuard device " + change.ifname + " (no UAPI socket " +
                                   uapi_.socket_path(change.ifname) + " and no kernel WireGuard)");
}

Status WgSelect::create_device(const std::string& ifname) {
    if (uapi_.has_device(ifname))
        return errno_error(EEXIST, "create WireGuard device " + ifname + ": " + uapi_.socket_path(ifname) +
                                       " already answers");
    // A socket left by a process that died would route the new device to UAPI, kernel or not.
    if (uapi_.has_socket(ifname)) unlink(uapi_.socket_path(ifname).c_str());
    std::string kernel_why = "no kernel WireGuard backend";
    if (kernel_) {
        auto s = kernel_->create_device(ifname);
        if (s || !kernel_lacks_wireguard(s.error().code)) return s;
        kernel_why = s.error().message;
    }
    auto s = uapi_.create_device(ifname);
    if (!s) return Error{s.error().code, s.error().message + " (after the kernel could not: " + kernel_why + ")"};
    return s;
}

Status WgSelect::delete_device(const std::string& ifname) {
    if (auto* b = pick(ifname)) return b->delete_device(ifname);
    return errno_error(ENODEV, "delete WireGuard device " + ifname + " (no UAPI socket " + uapi_.socket_path(ifname) +
                                   " and no kernel WireGuard)");
}

bool WgSelect::userspace_alive(const std::string& ifname) const {
    return linux_::userspace_alive(ifname, uapi_.options().socket_dir);
}

std::optional<pid_t> WgSelect::userspace_pid(const std::string& ifname) const {
    return linux_::userspace_pid(ifname, uapi_.options().socket_dir);
}

}  // namespace wgf::linux_
