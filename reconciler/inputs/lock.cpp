#include "inputs/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace wgf::inputs {
namespace {

// This process's command line with spaces between the arguments, cut to a readable length.
std::string own_command_line() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!s.empty() && s.back() == '\0') s.pop_back();
    for (char& c : s)
        if (c == '\0' || c == '\n') c = ' ';
    if (s.size() > 200) s = s.substr(0, 200) + "...";
    return s;
}

// What the holder wrote: "PID COMMAND-LINE", or a note that it wrote nothing yet.
std::string holder_of(int fd) {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return "a process that has not written its pid yet";
    std::string s(buf, static_cast<size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    auto sp = s.find(' ');
    if (sp == std::string::npos) return "pid " + s;
    return fmt::format("pid {} ({})", s.substr(0, sp), s.substr(sp + 1));
}

}  // namespace

std::string lock_path(const std::string& state_dir) { return state_dir + "/lock"; }

backend::Result<StateLock> StateLock::acquire(const std::string& state_dir, int timeout_s, const std::function<void()>& waiting) {
    std::string path = lock_path(state_dir);
    if (mkdir(state_dir.c_str(), 0700) != 0 && errno == ENOENT) {
        std::error_code ec;
        std::filesystem::create_directories(std::filesystem::path(state_dir).parent_path(), ec);
        mkdir(state_dir.c_str(), 0700);
    }
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return backend::errno_error(errno, "open lock file " + path);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    auto next_call = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
        if (errno == EINTR) continue;
        if (errno != EWOULDBLOCK) {
            int err = errno;
            close(fd);
            return backend::errno_error(err, "lock " + path);
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            std::string holder = holder_of(fd);
            close(fd);
            return backend::Error{EWOULDBLOCK, fmt::format("another wg-fleet run holds this node's state directory {}: {}; "
                                                           "waited {} s (--lock-timeout); nothing applied",
                                                           state_dir, holder, timeout_s)};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (waiting && std::chrono::steady_clock::now() >= next_call) {
            waiting();
            next_call += std::chrono::seconds(1);
        }
    }
    // Ours now: say who we are. The content is only for the message above.
    std::string me = fmt::format("{} {}\n", getpid(), own_command_line());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
        int err = errno;
        close(fd);
        return backend::errno_error(err, "write lock file " + path);
    }
    return StateLock(fd, std::move(path));
}

StateLock& StateLock::operator=(StateLock&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) close(fd_);
        fd_ = o.fd_;
        path_ = std::move(o.path_);
        o.fd_ = -1;
    }
    return *this;
}

StateLock::~StateLock() {
    // Closing the last descriptor releases the flock; the file stays for the next run.
    if (fd_ >= 0) close(fd_);
}

}  // namespace wgf::inputs
