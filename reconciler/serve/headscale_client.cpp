#include "serve/headscale_client.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>
#include <httplib.h>
#include <sodium.h>

#include "linux/files.hpp"
#include "system/keys.hpp"

namespace wgf::serve::headscale {
namespace {

using backend::Error;

// Responses larger than this are not a node list anyone runs; reading stops there.
constexpr size_t kMaxBody = 64u << 20;
// Debian's bundle of the system's trusted certificates (ca-certificates).
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

// Creates `dir` (0700) when absent; an existing directory keeps its mode.
backend::Status ensure_private_dir(const std::string& dir) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return {};
    std::filesystem::path p(dir);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return backend::errno_error(errno, "create directory " + dir);
    return {};
}

// A whole small file; nullopt when it does not exist.
backend::Result<std::optional<std::string>> read_small_file(const std::string& path, struct stat* st_out = nullptr) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return std::optional<std::string>{};
        return backend::errno_error(errno, "open " + path);
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        close(fd);
        return Error{.code = err ? err : EINVAL, .message = "read " + path + ": not a regular file"};
    }
    if (st_out) *st_out = st;
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            sodium_memzero(buf, sizeof buf);
            return backend::errno_error(err, "read " + path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return std::optional<std::string>{std::move(out)};
}

// "https://host:port/prefix" split into what httplib connects to and the path the API is under.
struct Url {
    std::string origin;
    std::string base_path;
};

Url split_url(const std::string& url) {
    size_t scheme_end = url.find("://");
    size_t path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    Url u{.origin = url.substr(0, path_start), .base_path = path_start == std::string::npos ? "" : url.substr(path_start)};
    while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
    return u;
}

std::string describe(httplib::Error e, const model::Headscale& hs) {
    switch (e) {
        case httplib::Error::Connection:
            return fmt::format("cannot connect to Headscale at {} (connection refused, or the host is unreachable)", hs.url);
        case httplib::Error::Read:
            return fmt::format("no complete answer from Headscale at {} within the timeout of {} (timed out, or the connection closed)",
                               hs.url, model::format_duration(hs.timeout));
        case httplib::Error::Write:
            return fmt::format("sending the request to Headscale at {} failed (timed out, or the connection closed)", hs.url);
        case httplib::Error::SSLConnection:
        case httplib::Error::SSLServerVerification:
            return fmt::format("TLS with Headscale at {} failed ({})", hs.url, httplib::to_string(e));
        case httplib::Error::Canceled: return fmt::format("the answer of Headscale at {} is larger than {} MiB", hs.url, kMaxBody >> 20);
        default: return fmt::format("request to Headscale at {} failed: {}", hs.url, httplib::to_string(e));
    }
}

}  // namespace

std::string headscale_dir(const model::Config& cfg) { return mapping_dir(cfg.state_dir); }

backend::Result<Mapping> FileMappingStore::load(const std::string& fleet) {
    auto text = read_small_file(path(fleet));
    if (!text) return text.error();
    if (!*text) return Mapping{};
    auto m = mapping_from_json(**text);
    if (!m) return Error{.code = m.error().code, .message = fmt::format("read {}: {}", path(fleet), m.error().message)};
    return m;
}

backend::Status FileMappingStore::save(const std::string& fleet, const Mapping& m) {
    if (auto st = ensure_private_dir(dir_); !st) return st;
    return linux_::write_file_atomic(path(fleet), mapping_to_json(m), 0600);
}

std::string NodeKeys::path(const std::string& fleet, const std::string& node_id) const {
    return dir_ + "/" + fleet + "/" + node_id + ".key";
}

backend::Result<model::Key> NodeKeys::public_key(const std::string& fleet, const std::string& node_id) {
    if (!valid_node_id(node_id)) return Error{.code = EINVAL, .message = fmt::format("node id '{}' cannot name a key file", node_id)};
    if (auto st = ensure_private_dir(dir_); !st) return st.error();
    if (auto st = ensure_private_dir(dir_ + "/" + fleet); !st) return st.error();
    system::FileKeyStore store;
    auto key = store.load_or_generate(path(fleet, node_id));
    if (!key) return key.error();
    return key->public_key();
}

backend::Result<std::optional<model::SecretKey>> NodeKeys::load(const std::string& fleet, const std::string& node_id) {
    if (!valid_node_id(node_id)) return std::optional<model::SecretKey>{};
    system::FileKeyStore store;
    return store.load(path(fleet, node_id));
}

backend::Status NodeKeys::remove(const std::string& fleet, const std::string& node_id) {
    if (!valid_node_id(node_id)) return {};
    const std::string p = path(fleet, node_id);
    if (unlink(p.c_str()) != 0 && errno != ENOENT) return backend::errno_error(errno, "remove " + p);
    return {};
}

backend::Result<std::string> read_api_key(const std::string& path) {
    struct stat st {};
    auto text = read_small_file(path, &st);
    if (!text) return Error{.code = text.error().code, .message = "headscale api_key_file: " + text.error().message};
    if (!*text) return Error{.code = ENOENT, .message = fmt::format("headscale api_key_file {} does not exist", path)};
    std::string key = std::move(**text);
    auto wipe = [&] { sodium_memzero(key.data(), key.size()); };
    if (st.st_mode & 0077) {
        wipe();
        return Error{.code = EPERM,
                     .message = fmt::format("headscale api_key_file {} is readable by group or others (mode {:04o}): chmod 600 {}", path,
                                            st.st_mode & 07777, path)};
    }
    size_t b = key.find_first_not_of(" \t\r\n"), e = key.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) {
        wipe();
        return Error{.code = EINVAL, .message = fmt::format("headscale api_key_file {} is empty", path)};
    }
    std::string out = key.substr(b, e - b + 1);
    wipe();
    if (out.find_first_of("\r\n") != std::string::npos)
        return Error{.code = EINVAL, .message = fmt::format("headscale api_key_file {} holds more than one line", path)};
    return out;
}

backend::Result<std::string> fetch_nodes(const model::Headscale& hs, const std::string& api_key) {
    const Url u = split_url(hs.url);
    httplib::Client client(u.origin);
    const auto t = static_cast<time_t>(hs.timeout);
    client.set_connection_timeout(t, 0);
    client.set_read_timeout(t, 0);
    client.set_write_timeout(t, 0);
    client.set_follow_location(false);
    // The request carries the API key: only to a server whose certificate the system trusts.
    client.enable_server_certificate_verification(true);
    if (hs.url.starts_with("https://") && std::filesystem::exists(kSystemCaBundle)) client.set_ca_cert_path(kSystemCaBundle);
    std::string body;
    bool too_large = false;
    httplib::Headers headers{{"Authorization", "Bearer " + api_key}, {"Accept", "application/json"}};
    auto res = client.Get(u.base_path + "/api/v1/node", headers, [&](const char* data, size_t len) {
        if (body.size() + len > kMaxBody) {
            too_large = true;
            return false;
        }
        body.append(data, len);
        return true;
    });
    if (!res) return Error{.code = 0, .message = describe(too_large ? httplib::Error::Canceled : res.error(), hs)};
    const int status = res->status;
    if (status == 401 || status == 403)
        return Error{.code = EACCES,
                     .message = fmt::format("Headscale at {} rejected the API key (HTTP {}): create one with `headscale apikeys create` "
                                            "and put it in {}",
                                            hs.url, status, hs.api_key_file)};
    if (status != 200)
        return Error{.code = 0, .message = fmt::format("Headscale at {} answered HTTP {} to GET /api/v1/node", hs.url, status)};
    return body;
}

PollOutcome poll_once(const PollContext& ctx) {
    PollOutcome out;
    auto fail = [&](const Error& e) {
        out.status = Error{.code = e.code,
                           .message = fmt::format("fleet {}: Headscale poll failed, nothing changed: {}", ctx.fleet, e.message)};
        out.members = members(ctx.fleet, out.mapping);
        return out;
    };
    const model::Fleet& f = ctx.cfg.fleets.at(ctx.fleet);
    if (!f.headscale) return fail(Error{.code = EINVAL, .message = "the fleet has no headscale:"});
    auto current = ctx.store.load(ctx.fleet);
    if (!current) return fail(current.error());
    out.mapping = *current;
    auto key = read_api_key(f.headscale->api_key_file);
    if (!key) return fail(key.error());
    auto body = fetch_nodes(*f.headscale, *key);
    sodium_memzero(key->data(), key->size());
    if (!body) return fail(body.error());
    auto nodes = parse_nodes(*body);
    if (!nodes) return fail(nodes.error());

    SyncInput in = sync_input(ctx.cfg, ctx.fleet, ctx.now);
    in.reserved.insert(ctx.reserved.begin(), ctx.reserved.end());
    in.taken_names.insert(ctx.taken_names.begin(), ctx.taken_names.end());
    SyncResult r = sync(*current, *nodes, in, [&](const std::string& id) { return ctx.keys.public_key(ctx.fleet, id); });
    if (r.mapping != *current)
        if (auto st = ctx.store.save(ctx.fleet, r.mapping); !st) return fail(st.error());
    out.mapping = std::move(r.mapping);
    // Key files go only once the mapping without them is stored.
    for (const auto& id : r.removed) {
        out.notes.push_back(
            fmt::format("fleet {}: Headscale node {} removed: missing for {} or more", ctx.fleet, id, model::format_duration(in.grace)));
        if (auto st = ctx.keys.remove(ctx.fleet, id); !st) out.notes.push_back(st.error().message);
    }
    for (const auto& id : r.added) {
        const Entry& e = out.mapping.nodes.at(id);
        out.notes.push_back(fmt::format("fleet {}: Headscale node {} added as {} with {}", ctx.fleet, id, e.name, e.address.str()));
    }
    for (auto& p : r.problems) out.notes.push_back(fmt::format("fleet {}: {}", ctx.fleet, p));
    out.members = members(ctx.fleet, out.mapping);
    return out;
}

backend::Result<Mapping> import_sync_state_file(const PollContext& ctx, const std::string& path) {
    const model::Fleet& f = ctx.cfg.fleets.at(ctx.fleet);
    if (!f.headscale) return Error{.code = EINVAL, .message = fmt::format("fleet {} has no headscale:", ctx.fleet)};
    auto text = read_small_file(path);
    if (!text) return text.error();
    if (!*text) return Error{.code = ENOENT, .message = fmt::format("{} does not exist", path)};
    auto current = ctx.store.load(ctx.fleet);
    if (!current) return current.error();
    SyncInput in = sync_input(ctx.cfg, ctx.fleet, ctx.now);
    in.reserved.insert(ctx.reserved.begin(), ctx.reserved.end());
    auto m = import_sync_state(**text, in, *current, [&](const std::string& id) { return ctx.keys.public_key(ctx.fleet, id); });
    if (!m) return Error{.code = m.error().code, .message = fmt::format("import {}: {}", path, m.error().message)};
    if (auto st = ctx.store.save(ctx.fleet, *m); !st) return st.error();
    return m;
}

backend::Result<std::optional<std::string>> node_config(const PollContext& ctx, const std::string& node_id,
                                                        const model::Key& server_public_key) {
    auto m = ctx.store.load(ctx.fleet);
    if (!m) return m.error();
    auto it = m->nodes.find(node_id);
    if (it == m->nodes.end()) return std::optional<std::string>{};
    auto key = ctx.keys.load(ctx.fleet, node_id);
    if (!key) return key.error();
    if (!*key || (*key)->public_key() != it->second.public_key)
        return Error{.code = ENOENT,
                     .message = fmt::format("the private key of Headscale node {} ({}) is missing or does not match its public key",
                                            node_id, ctx.keys.path(ctx.fleet, node_id))};
    return peer_config(*m, node_id, **key, server_side(ctx.cfg, ctx.fleet, server_public_key));
}

}  // namespace wgf::serve::headscale
