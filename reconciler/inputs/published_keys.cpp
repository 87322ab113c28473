#include "inputs/published_keys.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <sodium.h>

#include "config/tree.hpp"
#include "model/fd.hpp"
#include "plan/render.hpp"
#include "plan/rotation.hpp"

namespace wgf::inputs {
namespace {

std::string errno_text(int err) {
    const char* name = strerrorname_np(err);
    return fmt::format("{} ({})", std::strerror(err), name ? name : std::to_string(err));
}

// The private key a secret file holds, for comparison only: none when this process cannot read
// it (check as an ordinary user) or it is malformed; the file checks still hold then.
std::optional<model::SecretKey> read_secret_key(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    const model::Fd closer(fd);
    char buf[kPublishedKeyMaxBytes];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return std::nullopt;
    auto key = model::SecretKey::from_key_file(std::string_view(buf, static_cast<size_t>(n)));
    sodium_memzero(buf, sizeof buf);
    return key;
}

}  // namespace

std::string resolved_path(const std::string& path) {
    std::unique_ptr<char, decltype(&free)> real(realpath(path.c_str(), nullptr), &free);
    return real ? std::string(real.get()) : std::string();
}

std::vector<std::string> secret_files(const model::Config& cfg) {
    std::vector<std::string> out;
    for (const auto& [fleet, f] : cfg.fleets) {
        out.push_back(plan::private_key_path(cfg, fleet));
        out.push_back(plan::next_private_key_path(plan::private_key_path(cfg, fleet)));
    }
    return out;
}

Secrets load_secrets(const model::Config& cfg) {
    Secrets s;
    s.state_dir = resolved_path(cfg.state_dir);
    s.files = secret_files(cfg);
    for (const auto& f : s.files) {
        struct stat st {};
        if (stat(f.c_str(), &st) == 0) s.ids.emplace_back(st.st_dev, st.st_ino);
        if (auto k = read_secret_key(f)) s.keys.push_back(std::move(*k));
    }
    return s;
}

PublishedText read_published_text(const std::string& path, const Secrets& secrets, size_t max_bytes, const char* what) {
    PublishedText r;
    // O_NONBLOCK: a FIFO must not stall the load; it is refused below as not a regular file.
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) r.missing = true;
        else r.refused = fmt::format("cannot be read: {}", errno_text(errno));
        return r;
    }
    const model::Fd closer(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        r.refused = fmt::format("cannot be read: {}", errno_text(errno));
        return r;
    }
    for (const auto& [dev, ino] : secrets.ids)
        if (st.st_dev == dev && st.st_ino == ino) {
            r.refused = "it is one of this node's secret files (a private key)";
            return r;
        }
    // An unresolvable state_dir (none yet) holds nothing.
    if (!secrets.state_dir.empty() && plan::path_within(resolved_path(path), secrets.state_dir)) {
        r.refused = fmt::format("it resolves inside state_dir {}, where only secrets and state live", secrets.state_dir);
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        r.refused = "it is not a regular file";
        return r;
    }
    const std::string too_large = fmt::format("it is larger than {} bytes; {}", max_bytes, what);
    if (st.st_size > static_cast<off_t>(max_bytes)) {
        r.refused = too_large;
        return r;
    }
    // One byte more than allowed: a file whose size lies (procfs, a growing file) is caught too.
    r.text.resize(max_bytes + 1);
    size_t n = 0;
    while (n < r.text.size()) {
        ssize_t got = read(fd, r.text.data() + n, r.text.size() - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int err = errno;
            r.wipe();
            r.refused = fmt::format("cannot be read: {}", errno_text(err));
            return r;
        }
        if (got == 0) break;
        n += static_cast<size_t>(got);
    }
    if (n > max_bytes) {
        r.wipe();
        r.refused = too_large;
        return r;
    }
    r.text.resize(n);
    return r;
}

void PublishedText::wipe() {
    sodium_memzero(text.data(), text.size());
    text.clear();
}

bool is_private_key(const Secrets& secrets, const model::Key& key) {
    for (const auto& k : secrets.keys)
        if (sodium_memcmp(k.raw().data(), key.bytes.data(), key.bytes.size()) == 0) return true;
    return false;
}

PublishedKey read_published_key(const std::string& path, const Secrets& secrets) {
    PublishedKey r;
    auto got = read_published_text(path, secrets, kPublishedKeyMaxBytes, "a public key file is one line of 44 characters");
    r.missing = got.missing;
    r.refused = std::move(got.refused);
    if (r.missing || !r.refused.empty()) return r;
    std::string_view text(got.text);
    text = text.substr(0, text.find('\n'));
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    auto key = model::Key::from_base64(text);
    got.wipe();
    if (!key) {
        r.refused = "it does not hold a base64 WireGuard public key (content not shown)";
        return r;
    }
    if (is_private_key(secrets, *key)) {
        sodium_memzero(key->bytes.data(), key->bytes.size());
        r.refused = "it holds one of this node's private keys";
        return r;
    }
    r.key = key;
    return r;
}

void merge_published_keys(config::Parsed& parsed, config::Diagnostics& diags, bool replace) {
    auto& cfg = parsed.config;
    if (!cfg.keys_dir) return;
    const Secrets secrets = load_secrets(cfg);
    const config::Loc at = config::locate(parsed.tree, "keys_dir");
    auto merge = [&](const std::string& fleet, const std::string& node, std::optional<model::Key>& key, const std::string& path) {
        const std::string file = plan::published_key_path(*cfg.keys_dir, fleet, node);
        auto got = read_published_key(file, secrets);
        if (got.missing) {
            if (replace) key.reset();
            return;
        }
        if (!got.refused.empty()) {
            if (replace) key.reset();
            diags.error(at, "keys_dir", fmt::format("{}: refused as the public key of {}: {}", file, path, got.refused));
            return;
        }
        if (key && *key != *got.key && !replace) {
            diags.warning(config::locate(parsed.tree, path + ".public_key"), path + ".public_key",
                          fmt::format("differs from the published key in {}; using the YAML's", file));
            return;
        }
        key = got.key;
    };
    for (auto& [fname, f] : cfg.fleets) {
        for (auto& [n, m] : f.controllers) merge(fname, n, m.public_key, fmt::format("fleets.{}.controllers.{}", fname, n));
        for (auto& [n, m] : f.peers) merge(fname, n, m.public_key, fmt::format("fleets.{}.peers.{}", fname, n));
        if (f.style == model::FleetStyle::subnet) merge(fname, f.server, f.server_public_key, fmt::format("fleets.{}", fname));
    }
}

}  // namespace wgf::inputs
