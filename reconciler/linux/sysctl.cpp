#include "linux/sysctl.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "model/fd.hpp"

namespace wgf::linux_ {

std::string Sysctl::path_of(const std::string& key) const {
    // Keys are relative paths like net/ipv6/conf/all/forwarding; refuse anything that climbs out.
    if (key.empty() || key[0] == '/' || key.find("..") != std::string::npos) return {};
    return root_ + "/" + key;
}

backend::Result<std::string> Sysctl::read(const std::string& key) {
    std::string path = path_of(key);
    if (path.empty()) return backend::errno_error(EINVAL, "read sysctl " + key);
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return backend::errno_error(errno, "read sysctl " + key);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd.fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    if (n < 0) return backend::errno_error(errno, "read sysctl " + key);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

backend::Status Sysctl::write(const std::string& key, const std::string& value) {
    std::string path = path_of(key);
    std::string what = "write sysctl " + key + "=" + value;
    if (path.empty()) return backend::errno_error(EINVAL, what);
    model::Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.fd < 0) return backend::errno_error(errno, what);
    std::string line = value + "\n";
    ssize_t n = ::write(fd.fd, line.data(), line.size());
    if (n != static_cast<ssize_t>(line.size())) return backend::errno_error(n < 0 ? errno : EIO, what);
    return backend::Status::ok();
}

backend::Result<std::vector<std::string>> Sysctl::list(const std::string& dir) {
    std::string path = path_of(dir);
    if (path.empty()) return backend::errno_error(EINVAL, "list sysctls " + dir);
    std::vector<std::string> out;
    DIR* d = opendir(path.c_str());
    if (!d) {
        if (errno == ENOENT) return out;
        return backend::errno_error(errno, "list sysctls " + dir);
    }
    while (auto* e = readdir(d)) {
        std::string_view name = e->d_name;
        if (name != "." && name != "..") out.emplace_back(name);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace wgf::linux_
