#include "linux/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include <fmt/format.h>

#include "linux/process.hpp"
#include "model/fd.hpp"

namespace wgf::linux_ {
namespace {

// The last lines of a command's output, on one line: what it said about its failure.
std::string tail_of(const std::string& out) {
    std::string t = out.size() > 600 ? out.substr(out.size() - 600) : out;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    for (char& c : t)
        if (c == '\n') c = ' ';
    return t;
}

}  // namespace

backend::Status ShellCommands::run(const std::string& command) {
    const std::string what = fmt::format("run `{}`", command);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return backend::errno_error(errno, what + ": pipe");
    model::Fd out_read(out[0]), out_write(out[1]);
    // Built before fork: after it only async-signal-safe calls.
    std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
    char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
    pid_t pid = fork();
    if (pid < 0) return backend::errno_error(errno, what + ": fork");
    if (pid == 0) {
        prepare_exec_child(out_write.fd);
        execve(argv[0], argv, environ);
        _exit(127);
    }
    out_write.reset();
    std::string output;
    const int64_t deadline = monotonic_ms() + timeout_ms_;
    bool timed_out = false;
    for (;;) {
        const int64_t left = deadline - monotonic_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{.fd = out_read.fd, .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[4096];
        ssize_t n = read(out_read.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // every writer closed: the command (and what it started in the foreground) is done
        output.append(buf, static_cast<size_t>(n));
        if (output.size() > 65536) output.erase(0, output.size() - 4096);
    }
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) return backend::Error{ETIMEDOUT, fmt::format("{}: no answer within {} s; killed", what, timeout_ms_ / 1000)};
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return backend::Status::ok();
    const std::string tail = tail_of(output);
    return backend::Error{EIO, fmt::format("{}: {}{}", what, describe_exit(status), tail.empty() ? "" : ": " + tail)};
}

}  // namespace wgf::linux_
