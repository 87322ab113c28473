// Starting, finding and stopping the userspace WireGuard process. See uapi_process.hpp.
#include "linux/uapi_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "linux/nl_ptr.hpp"
#include "linux/process.hpp"
#include "linux/uapi_socket.hpp"
#include "model/fd.hpp"

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
    struct timespec ts {
        ms / 1000, (ms % 1000) * 1000000L
    };
    nanosleep(&ts, nullptr);
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

// The inode of the socket at the other end of a connected AF_UNIX socket, from sock_diag.
std::optional<uint32_t> unix_peer_inode(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::nullopt;
    NlPtr<mnl_socket> owner(mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC));
    mnl_socket* nl = owner.get();
    if (!nl) return std::nullopt;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return std::nullopt;

    alignas(nlmsghdr) char buf[8192];
    auto* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
    auto* req = static_cast<unix_diag_req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(unix_diag_req)));
    req->sdiag_family = AF_UNIX;
    req->udiag_states = ~0u;
    req->udiag_ino = static_cast<uint32_t>(st.st_ino);
    req->udiag_show = UDIAG_SHOW_PEER;
    req->udiag_cookie[0] = req->udiag_cookie[1] = ~0u;  // any cookie: look up by inode
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return std::nullopt;
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n <= 0) return std::nullopt;

    std::optional<uint32_t> peer;
    auto on_msg = [](const nlmsghdr* m, void* data) -> int {
        const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(m));
        for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(m, sizeof(unix_diag_msg)));
             mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr))); attr = mnl_attr_next(attr)) {
            if (mnl_attr_get_type(attr) == UNIX_DIAG_PEER && mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
                *static_cast<std::optional<uint32_t>*>(data) = mnl_attr_get_u32(attr);
        }
        return MNL_CB_OK;
    };
    if (mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, mnl_socket_get_portid(nl), on_msg, &peer) < 0) return std::nullopt;
    return peer;
}

bool process_holds(pid_t pid, const std::string& link_text) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = opendir(dir.c_str());
    if (!d) return false;
    bool found = false;
    char target[64];
    while (auto* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (n > 0 && std::string_view(target, static_cast<size_t>(n)) == link_text) {
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

std::string netns_id(const std::string& proc_path) {
    struct stat st {};
    if (stat(proc_path.c_str(), &st) != 0) return {};
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

}  // namespace

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

Status start_userspace(const std::vector<std::string>& argv, const std::string& ifname, const std::string& socket_dir, int timeout_ms) {
    std::vector<std::string> full = argv;
    full.push_back(ifname);
    const std::string what = "start userspace WireGuard `" + join(full) + "`";
    if (argv.empty()) return errno_error(EINVAL, what + ": no command");
    auto exe = find_in_path(argv[0]);
    if (!exe) return errno_error(ENOENT, what + ": " + argv[0] + " not found in PATH");

    model::Fd out_file(output_file());
    const int out = out_file.fd;
    int exec_err[2];
    if (pipe2(exec_err, O_CLOEXEC) != 0) return errno_error(errno, what + ": pipe");
    // The child reports a failed exec on this pipe; it closes on a successful one.
    model::Fd exec_err_read(exec_err[0]), exec_err_write(exec_err[1]);

    // Everything the child needs is built before fork: after it only async-signal-safe calls.
    std::vector<char*> cargv;
    cargv.reserve(full.size() + 1);
    for (auto& w : full) cargv.push_back(w.data());
    cargv.push_back(nullptr);
    const char* path = exe->c_str();

    pid_t pid = fork();
    if (pid < 0) {
        return errno_error(errno, what + ": fork");
    }
    if (pid == 0) {
        // A session of its own: the daemon must outlive wg-fleet and not share its terminal's
        // signals.
        setsid();
        prepare_exec_child(out);
        execve(path, cargv.data(), environ);
        int err = errno;
        ssize_t ignored = write(exec_err_write.fd, &err, sizeof err);
        (void)ignored;
        _exit(127);
    }
    exec_err_write.reset();
    int child_err = 0;
    ssize_t got;
    do got = read(exec_err_read.fd, &child_err, sizeof child_err);
    while (got < 0 && errno == EINTR);
    exec_err_read.reset();
    if (got == static_cast<ssize_t>(sizeof child_err)) {
        waitpid(pid, nullptr, 0);
        return errno_error(child_err, what + ": exec " + *exe);
    }

    const int64_t deadline = monotonic_ms() + timeout_ms;
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
        if (monotonic_ms() >= deadline) break;
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
    Error e = errno_error(ETIMEDOUT,
                          what + ": no answer on " + socket_dir + "/" + ifname + ".sock within " + std::to_string(timeout_ms) + " ms");
    if (std::string tail = output_tail(out); !tail.empty()) e.message += "; it printed: " + tail;
    return e;
}

bool process_running(pid_t pid) {
    // A zombie still answers kill(pid, 0); its stat state says whether it still runs.
    FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
    if (!f) return false;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

std::optional<pid_t> uapi_server_pid(const std::string& socket_dir, const std::string& ifname) {
    model::Fd fd(uapi_connect(socket_dir, ifname));
    if (fd.fd < 0) return std::nullopt;
    uapi_set_timeouts(fd.fd, 2000);
    ucred cred{};
    socklen_t len = sizeof cred;
    pid_t listener = getsockopt(fd.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
    // Until the daemon has accepted, the peer socket is in no process's descriptor table.
    if (!uapi_ping_fd(fd.fd, ifname)) return std::nullopt;
    auto peer = unix_peer_inode(fd.fd);
    if (!peer) {
        // No sock_diag for AF_UNIX (CONFIG_UNIX_DIAG off): the listener's pid is the best guess.
        if (listener > 0 && process_running(listener)) return listener;
        return std::nullopt;
    }
    std::string link_text = "socket:[" + std::to_string(*peer) + "]";
    if (listener > 0 && process_holds(listener, link_text)) return listener;
    DIR* proc = opendir("/proc");
    if (!proc) return std::nullopt;
    std::optional<pid_t> found;
    while (auto* e = readdir(proc)) {
        pid_t pid = 0;
        auto [p, ec] = std::from_chars(e->d_name, e->d_name + std::strlen(e->d_name), pid);
        if (ec != std::errc() || *p != '\0' || pid <= 0 || pid == getpid()) continue;
        if (process_holds(pid, link_text)) {
            found = pid;
            break;
        }
    }
    closedir(proc);
    return found;
}

bool process_in_our_netns(pid_t pid) {
    return netns_id("/proc/" + std::to_string(pid) + "/ns/net") == netns_id("/proc/thread-self/ns/net");
}

bool wait_userspace_gone(const std::string& socket_dir, const std::string& ifname, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        model::Fd fd(uapi_connect(socket_dir, ifname));
        if (fd.fd < 0) {
            // A daemon killed before it could clean up leaves its socket: remove it, as wg does.
            if (fd.fd == -ECONNREFUSED) unlink(uapi_socket_path(socket_dir, ifname).c_str());
            return true;
        }
        sleep_ms(20);
    }
    return false;
}

}  // namespace wgf::linux_
