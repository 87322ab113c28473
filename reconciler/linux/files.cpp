#include "linux/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

namespace wgf::linux_ {
namespace {

backend::Status mkdirs(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return backend::errno_error(ec.value(), "create directory " + dir.string());
    return backend::Status::ok();
}

bool write_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        off += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

backend::Result<std::optional<backend::FileLive>> LocalFiles::read(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return std::optional<backend::FileLive>{};
        return backend::errno_error(errno, "read " + path);
    }
    struct stat st {};
    fstat(fd, &st);
    backend::FileLive f;
    f.file.path = path;
    f.file.mode = st.st_mode & 07777;
    f.uid = st.st_uid;
    f.gid = st.st_gid;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) f.file.content.append(buf, static_cast<size_t>(n));
    int err = errno;
    close(fd);
    if (n < 0) return backend::errno_error(err, "read " + path);
    auto first_line = std::string_view(f.file.content).substr(0, f.file.content.find('\n'));
    f.has_marker = first_line == model::kFileMarker;
    return std::optional<backend::FileLive>{std::move(f)};
}

backend::Status write_file_atomic(const std::string& path, const std::string& content, uint32_t mode) {
    std::filesystem::path p(path);
    std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
    if (auto s = mkdirs(dir); !s) return s;
    std::string tmp = (dir / ("." + p.filename().string() + ".wg-fleet-XXXXXX")).string();
    int fd = mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return backend::errno_error(errno, "create a temporary file for " + path);
    auto fail = [&](const std::string& what) {
        int err = errno;
        close(fd);
        unlink(tmp.c_str());
        return backend::errno_error(err, what + " " + path);
    };
    // Mode first, so a key file is never readable by others, not even for a moment.
    if (fchmod(fd, mode) != 0) return fail("set mode of");
    if (!write_all(fd, content)) return fail("write");
    if (fsync(fd) != 0) return fail("fsync");
    if (close(fd) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return backend::errno_error(err, "close " + path);
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return backend::errno_error(err, "rename into " + path);
    }
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);  // make the rename itself durable
        close(dfd);
    }
    return backend::Status::ok();
}

backend::Status LocalFiles::write(const model::ManagedFile& file) {
    return write_file_atomic(file.path, file.content, file.mode);
}

backend::Status LocalFiles::remove(const std::string& path) {
    if (unlink(path.c_str()) != 0) return backend::errno_error(errno, "remove " + path);
    return backend::Status::ok();
}

}  // namespace wgf::linux_
