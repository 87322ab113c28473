#include "linux/sysctl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace wgf::linux_ {

std::string Sysctl::path_of(const std::string& key) const {
    // Keys are relative paths like net/ipv6/conf/all/forwarding; refuse anything that climbs out.
    if (key.empty() || key[0] == '/' || key.find("..") != std::string::npos) return {};
    return root_ + "/" + key;
}

backend::Result<std::string> Sysctl::read(const std::string& key) {
    std::string path = path_of(key);
    if (path.empty()) return backend::errno_error(EINVAL, "read sysctl " + key);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return backend::errno_error(errno, "read sysctl " + key);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    int err = errno;
    close(fd);
    if (n < 0) return backend::errno_error(err, "read sysctl " + key);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

backend::Status Sysctl::write(const std::string& key, const std::string& value) {
    std::string path = path_of(key);
    std::string what = "write sysctl " + key + "=" + value;
    if (path.empty()) return backend::errno_error(EINVAL, what);
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return backend::errno_error(errno, what);
    std::string line = value + "\n";
    ssize_t n = ::write(fd, line.data(), line.size());
    int err = errno;
    close(fd);
    if (n != static_cast<ssize_t>(line.size())) return backend::errno_error(n < 0 ? err : EIO, what);
    return backend::Status::ok();
}

}  // namespace wgf::linux_
