#include "linux/files.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "model/fd.hpp"


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

const char* what_is(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    return "not a regular file";
}

// Reads up to `limit` bytes (all when limit is 0).
bool read_up_to(int fd, std::string& out, size_t limit) {
    char buf[65536];
    for (;;) {
        size_t want = sizeof buf;
        if (limit) {
            if (out.size() >= limit) return true;
            want = std::min(want, limit - out.size());
        }
        ssize_t n = ::read(fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) return true;
        out.append(buf, static_cast<size_t>(n));
    }
}

// What is at `path` now, without following a final symbolic link and without blocking on a
// FIFO: nullopt when nothing is there. A file without the marker is not read beyond its first
// line: it is not ours, and it may be large.
backend::Result<std::optional<backend::FileLive>> inspect(const std::string& path) {
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    backend::FileLive f;
    f.file.path = path;
    if (fd.fd < 0) {
        int err = errno;
        if (err == ENOENT) return std::optional<backend::FileLive>{};
        struct stat st {};
        // ELOOP: a symbolic link; ENXIO: a socket; others (EACCES, ...) are errors.
        if ((err == ELOOP || err == ENXIO) && lstat(path.c_str(), &st) == 0) {
            f.not_regular = what_is(st.st_mode);
            return std::optional<backend::FileLive>{std::move(f)};
        }
        return backend::errno_error(err, "read " + path);
    }
    struct stat st {};
    if (fstat(fd.fd, &st) != 0) return backend::errno_error(errno, "stat " + path);
    f.file.mode = st.st_mode & 07777;
    f.uid = st.st_uid;
    f.gid = st.st_gid;
    if (!S_ISREG(st.st_mode)) {
        f.not_regular = what_is(st.st_mode);
        return std::optional<backend::FileLive>{std::move(f)};
    }
    const size_t first = std::string_view(model::kFileMarker).size() + 1;
    if (!read_up_to(fd.fd, f.file.content, first)) return backend::errno_error(errno, "read " + path);
    f.has_marker = model::has_file_marker(f.file.content);
    if (!f.has_marker) {
        f.file.content.clear();
        return std::optional<backend::FileLive>{std::move(f)};
    }
    if (!read_up_to(fd.fd, f.file.content, 0)) return backend::errno_error(errno, "read " + path);
    return std::optional<backend::FileLive>{std::move(f)};
}

// Whether the file at `path` may be replaced or removed: nothing there (nullopt: a creation),
// or a regular file carrying the marker (true). Anything else is the conflict, as an error
// naming the path and how to resolve it.
backend::Result<bool> ours_to_replace(const std::string& path) {
    auto f = inspect(path);
    if (!f) return f.error();
    if (!f->has_value()) return false;
    if (!(*f)->not_regular.empty())
        return backend::Error{EEXIST, fmt::format("{} is {}, not a file wg-fleet wrote; left as is (remove it, or choose another path)",
                                                  path, (*f)->not_regular)};
    if (!(*f)->has_marker)
        return backend::Error{EEXIST, fmt::format("{} exists and was not written by wg-fleet; left as is (remove or move it, or make "
                                                  "its first line \"{}\" to hand it over)",
                                                  path, model::kFileMarker)};
    return true;
}

// Renames tmp onto path only if nothing is at path: a file that appeared since the check is
// never replaced.
int rename_noreplace(const std::string& tmp, const std::string& path) {
    if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    // A filesystem without RENAME_NOREPLACE: link() never replaces either.
    if (link(tmp.c_str(), path.c_str()) != 0) return -1;
    unlink(tmp.c_str());
    return 0;
}

backend::Status write_atomic(const std::string& path, const std::string& content, uint32_t mode, bool only_ours) {
    std::filesystem::path p(path);
    std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
    if (only_ours) {
        // Before anything is created: a conflict leaves even the directory as it was.
        if (auto o = ours_to_replace(path); !o) return o.error();
    }
    if (auto s = mkdirs(dir); !s) return s;
    std::string tmp = (dir / ("." + p.filename().string() + ".wg-fleet-XXXXXX")).string();
    model::Fd fd(mkostemp(tmp.data(), O_CLOEXEC));
    if (fd.fd < 0) return backend::errno_error(errno, "create a temporary file for " + path);
    auto fail = [&](const std::string& what) {
        int err = errno;
        fd.reset();
        unlink(tmp.c_str());
        return backend::errno_error(err, what + " " + path);
    };
    // Mode first, so a key file is never readable by others, not even for a moment.
    if (fchmod(fd.fd, mode) != 0) return fail("set mode of");
    if (!write_all(fd.fd, content)) return fail("write");
    if (fsync(fd.fd) != 0) return fail("fsync");
    // Closed by hand: its error (a delayed write failing) is the file's.
    if (close(fd.release()) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return backend::errno_error(err, "close " + path);
    }
    int rc = 0;
    if (only_ours) {
        // Again right before the rename: the file may have changed hands since the plan.
        auto o = ours_to_replace(path);
        if (!o) {
            unlink(tmp.c_str());
            return o.error();
        }
        rc = *o ? rename(tmp.c_str(), path.c_str()) : rename_noreplace(tmp, path);
        if (rc != 0 && errno == EEXIST) {
            unlink(tmp.c_str());
            return backend::Error{EEXIST, fmt::format("{} appeared while wg-fleet was writing it; left as is", path)};
        }
    } else {
        rc = rename(tmp.c_str(), path.c_str());
    }
    if (rc != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return backend::errno_error(err, "rename into " + path);
    }
    model::Fd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.fd >= 0) fsync(dfd.fd);  // make the rename itself durable
    return backend::Status::ok();
}

struct Resolved {
    std::string dir;   // realpath of the nearest existing ancestor directory
    std::string rest;  // the path below it
};

// Resolves the nearest existing ancestor of path's directory, as the kernel would when the
// file is written (`..` after a symbolic link goes up from the link's target).
backend::Result<Resolved> resolve_parent(const std::string& path) {
    auto slash = path.rfind('/');
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name.empty() || name == "." || name == "..") return backend::Error{EINVAL, fmt::format("{} does not name a file", path)};
    std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string rest = name;
    for (;;) {
        std::unique_ptr<char, decltype(&free)> real(realpath(parent.c_str(), nullptr), &free);
        if (real) return Resolved{real.get(), std::filesystem::path(rest).lexically_normal().string()};
        if (errno != ENOENT && errno != ENOTDIR) return backend::errno_error(errno, "resolve " + parent);
        auto s = parent.find_last_not_of('/');
        if (s == std::string::npos) return backend::errno_error(ENOENT, "resolve " + path);
        auto cut = parent.rfind('/', s);
        const size_t first = cut == std::string::npos ? 0 : cut + 1;
        rest = parent.substr(first, s - first + 1).append("/").append(rest);
        parent = cut == std::string::npos ? "." : (cut == 0 ? "/" : parent.substr(0, cut));
    }
}

}  // namespace

backend::Result<std::optional<backend::FileLive>> LocalFiles::read(const std::string& path) { return inspect(path); }

backend::Status write_file_atomic(const std::string& path, const std::string& content, uint32_t mode) {
    return write_atomic(path, content, mode, false);
}

backend::Status LocalFiles::write(const model::ManagedFile& file) { return write_atomic(file.path, file.content, file.mode, true); }

backend::Status LocalFiles::remove(const std::string& path) {
    auto o = ours_to_replace(path);
    if (!o) return o.error();
    if (!*o) return backend::errno_error(ENOENT, "remove " + path);
    if (unlink(path.c_str()) != 0) return backend::errno_error(errno, "remove " + path);
    return backend::Status::ok();
}

backend::Result<backend::FilePlace> LocalFiles::place(const std::string& path) {
    auto r = resolve_parent(path);
    if (!r) return r.error();
    struct stat st {};
    if (stat(r->dir.c_str(), &st) != 0) return backend::errno_error(errno, "stat " + r->dir);
    return backend::FilePlace{st.st_dev, st.st_ino, r->rest};
}

backend::Result<bool> LocalFiles::within(const std::string& path, const std::string& dir) {
    struct stat want {};
    if (stat(dir.c_str(), &want) != 0) {
        if (errno != ENOENT) return backend::errno_error(errno, "stat " + dir);
        // No such directory: nothing can be in it but what a write would create, which the
        // lexical comparison sees.
        auto a = std::filesystem::path(path).lexically_normal().string();
        auto b = std::filesystem::path(dir).lexically_normal().string();
        while (b.size() > 1 && b.back() == '/') b.pop_back();
        return a == b || a.compare(0, b.size() + 1, b + "/") == 0;
    }
    auto r = resolve_parent(path);
    if (!r) return r.error();
    // Every ancestor of a resolved path is a physical ancestor: compare each by device and
    // inode, which also sees `dir` through a bind mount.
    std::string d = r->dir;
    for (;;) {
        struct stat st {};
        if (stat(d.c_str(), &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino) return true;
        if (d == "/") return false;
        auto cut = d.rfind('/');
        d = cut == 0 || cut == std::string::npos ? "/" : d.substr(0, cut);
    }
}

}  // namespace wgf::linux_
