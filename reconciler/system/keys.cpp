#include "system/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include <sodium.h>

#include "linux/files.hpp"

namespace wgf::system {

backend::Result<std::optional<model::SecretKey>> FileKeyStore::load(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return std::optional<model::SecretKey>{};
        return backend::errno_error(errno, "read private key " + path);
    }
    struct stat st {};
    fstat(fd, &st);
    if (st.st_mode & 077) loose_permissions = path;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf);
    int err = errno;
    close(fd);
    if (n < 0) return backend::errno_error(err, "read private key " + path);
    auto key = model::SecretKey::from_key_file(std::string_view(buf, static_cast<size_t>(n)));
    sodium_memzero(buf, sizeof buf);
    if (!key) return backend::Error{EINVAL, "read private key " + path + ": not a base64 WireGuard key"};
    return std::optional<model::SecretKey>{std::move(*key)};
}

namespace {

// Creates `path` with `content` only if it does not exist: the content goes to a temporary file
// (0600 from creation, fsynced), which is then linked to `path`. link() fails with EEXIST when
// the path exists, so of two runs generating a key at once exactly one wins, and nobody ever
// sees a half-written key. false (no error) when the path existed.
backend::Result<bool> create_exclusive(const std::string& path, const std::string& content) {
    std::filesystem::path p(path);
    std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return backend::errno_error(ec.value(), "create directory " + dir.string());
    std::string tmp = (dir / ("." + p.filename().string() + ".wg-fleet-XXXXXX")).string();
    int fd = mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return backend::errno_error(errno, "create a temporary file for " + path);
    auto fail = [&](const std::string& what) {
        int err = errno;
        if (fd >= 0) close(fd);
        unlink(tmp.c_str());
        return backend::errno_error(err, what + " " + path);
    };
    if (fchmod(fd, 0600) != 0) return fail("set mode of");
    size_t off = 0;
    while (off < content.size()) {
        ssize_t n = write(fd, content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("write");
        off += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0) return fail("fsync");
    int c = close(fd);
    fd = -1;
    if (c != 0) return fail("close");
    if (link(tmp.c_str(), path.c_str()) != 0) {
        if (errno != EEXIST) return fail("link into");
        unlink(tmp.c_str());
        return false;
    }
    unlink(tmp.c_str());
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);  // make the new name durable
        close(dfd);
    }
    return true;
}

}  // namespace

backend::Result<model::SecretKey> FileKeyStore::load_or_generate(const std::string& path) {
    auto existing = load(path);
    if (!existing) return existing.error();
    if (existing->has_value()) return **existing;
    model::SecretKey key = model::SecretKey::generate();
    std::string text = key.base64_for_storage() + "\n";
    auto created = create_exclusive(path, text);
    sodium_memzero(text.data(), text.size());
    if (!created) return created.error();
    if (*created) return key;
    // Another run created the key first: theirs is the node's key.
    auto theirs = load(path);
    if (!theirs) return theirs.error();
    if (!theirs->has_value()) return backend::Error{ENOENT, "read private key " + path + ": removed while it was being created"};
    return **theirs;
}

backend::Result<bool> FileKeyStore::install(const std::string& path, const model::SecretKey& key) {
    std::string text = key.base64_for_storage() + "\n";
    auto created = create_exclusive(path, text);
    sodium_memzero(text.data(), text.size());
    return created;
}

backend::Status FileKeyStore::publish(const std::string& path, const model::Key& public_key) {
    const std::string line = public_key.base64() + "\n";
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0) {
        struct stat st {};
        char buf[64];
        ssize_t n = -1;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 && st.st_size == static_cast<off_t>(line.size()))
            n = read(fd, buf, sizeof buf);
        close(fd);
        if (n == static_cast<ssize_t>(line.size()) && std::string_view(buf, static_cast<size_t>(n)) == line) return backend::Status::ok();
    }
    return linux_::write_file_atomic(path, line, 0644);
}

backend::Status FileKeyStore::promote(const std::string& next_file, const std::string& key_file) {
    struct stat st {};
    if (lstat(next_file.c_str(), &st) != 0) return backend::errno_error(errno, "switch to the next key " + next_file);
    if (!S_ISREG(st.st_mode))
        return backend::Error{EINVAL, "switch to the next key " + next_file + ": not a regular file; nothing changed"};
    if (st.st_mode & 077)
        return backend::Error{EPERM,
                              "switch to the next key " + next_file + ": readable by group or others (it must be 0600); nothing changed"};
    if (rename(next_file.c_str(), key_file.c_str()) != 0) return backend::errno_error(errno, "move " + next_file + " to " + key_file);
    std::filesystem::path dir = std::filesystem::path(key_file).parent_path();
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return backend::Status::ok();
}

backend::Status FileKeyStore::unpublish(const std::string& path) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return backend::errno_error(errno, "remove " + path);
    return backend::Status::ok();
}

}  // namespace wgf::system
