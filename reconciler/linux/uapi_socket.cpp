// The UAPI socket transport. See uapi_socket.hpp.
#include "linux/uapi_socket.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "model/fd.hpp"

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Status;

namespace {

// Straight from one large buffer: no per-line allocation, one recv per buffer fill.
template <class Parser>
Status read_reply(int fd, Parser& parser, const std::string& what) {
    constexpr size_t kSize = 256 * 1024;
    std::unique_ptr<char[]> buf(new char[kSize]);
    size_t used = 0, high = 0;
    struct Wipe {
        char* p;
        const size_t& n;
        ~Wipe() { wipe_memory(p, n); }
    } wipe{buf.get(), high};

    size_t start = 0, scanned = 0;
    for (;;) {
        while (scanned < used) {
            auto* nl = static_cast<char*>(std::memchr(buf.get() + scanned, '\n', used - scanned));
            if (!nl) {
                scanned = used;
                break;
            }
            size_t end = static_cast<size_t>(nl - buf.get());
            if (parser.line(std::string_view(buf.get() + start, end - start)) != uapi::Step::more) return Status::ok();
            start = scanned = end + 1;
        }
        if (start > 0) {
            std::memmove(buf.get(), buf.get() + start, used - start);
            used -= start;
            scanned -= start;
            start = 0;
        }
        if (used == kSize) return errno_error(EPROTO, what + ": a UAPI reply line is longer than 256 KiB");
        ssize_t n = recv(fd, buf.get() + used, kSize - used, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return errno_error(ETIMEDOUT, what + ": waiting for the UAPI reply");
            return errno_error(errno, what + ": reading the UAPI reply");
        }
        if (n == 0) return Status::ok();  // the parser reports the truncated reply
        used += static_cast<size_t>(n);
        high = std::max(high, used);
    }
}

}  // namespace

std::string uapi_socket_path(const std::string& socket_dir, const std::string& ifname) { return socket_dir + "/" + ifname + ".sock"; }

int uapi_connect(const std::string& socket_dir, const std::string& ifname) {
    if (!model::valid_ifname(ifname)) return -EINVAL;
    std::string path = uapi_socket_path(socket_dir, ifname);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    model::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.fd < 0) return -errno;
    while (connect(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EINTR) return -errno;
    }
    return fd.release();
}

Error uapi_connect_error(int err, const std::string& what, const std::string& path) {
    if (err == ENOENT) return errno_error(ENODEV, what + " (no UAPI socket " + path + ")");
    if (err == ECONNREFUSED) return errno_error(ENODEV, what + " (" + path + " refuses connections: its userspace process is gone)");
    return errno_error(err, what + ": connect to " + path);
}

void uapi_set_timeouts(int fd, int timeout_ms) {
    struct timeval tv {
        timeout_ms / 1000, (timeout_ms % 1000) * 1000
    };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Status uapi_send(int fd, const char* data, size_t size, const std::string& what) {
    while (size > 0) {
        // MSG_NOSIGNAL: a daemon that died mid-exchange must not kill us with SIGPIPE.
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return errno_error(ETIMEDOUT, what + ": sending to the UAPI socket");
            return errno_error(errno, what + ": sending to the UAPI socket");
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return Status::ok();
}

Status uapi_read_reply(int fd, uapi::GetReplyParser& parser, const std::string& what) { return read_reply(fd, parser, what); }

Status uapi_read_reply(int fd, uapi::SetReplyParser& parser, const std::string& what) { return read_reply(fd, parser, what); }

bool uapi_ping_fd(int fd, const std::string& ifname) {
    static constexpr char kEmptySet[] = "set=1\n\n";
    if (!uapi_send(fd, kEmptySet, sizeof kEmptySet - 1, "ping")) return false;
    uapi::SetReplyParser parser(ifname);
    if (!uapi_read_reply(fd, parser, "ping")) return false;
    return parser.finish().is_ok();
}

bool uapi_ping(const std::string& socket_dir, const std::string& ifname, int timeout_ms) {
    model::Fd fd(uapi_connect(socket_dir, ifname));
    if (fd.fd < 0) return false;
    uapi_set_timeouts(fd.fd, timeout_ms);
    return uapi_ping_fd(fd.fd, ifname);
}

}  // namespace wgf::linux_
