#include "apply/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <sodium.h>

#include "linux/files.hpp"
#include "plan/render.hpp"

namespace wgf::apply {

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
    std::string_view text(buf, static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    auto key = model::SecretKey::from_base64(text);
    sodium_memzero(buf, sizeof buf);
    if (!key) return backend::Error{EINVAL, "read private key " + path + ": not a base64 WireGuard key"};
    return std::optional<model::SecretKey>{std::move(*key)};
}

backend::Result<model::SecretKey> FileKeyStore::load_or_generate(const std::string& path) {
    auto existing = load(path);
    if (!existing) return existing.error();
    if (existing->has_value()) return **existing;
    model::SecretKey key = model::SecretKey::generate();
    std::string text = key.base64_for_storage() + "\n";
    auto s = linux_::write_file_atomic(path, text, 0600);
    sodium_memzero(text.data(), text.size());
    if (!s) return s.error();
    return key;
}

backend::Result<model::SecretKey> ensure_node_key(KeyStore& keys, const model::Config& cfg, const std::string& fleet,
                                                  bool* generated) {
    std::string path = plan::private_key_path(cfg, fleet);
    auto existing = keys.load(path);
    if (!existing) return existing.error();
    *generated = !existing->has_value();
    if (existing->has_value()) return **existing;
    return keys.load_or_generate(path);
}

backend::Status FileKeyStore::publish(const std::string& path, const model::Key& public_key) {
    return linux_::write_file_atomic(path, public_key.base64() + "\n", 0644);
}

}  // namespace wgf::apply
