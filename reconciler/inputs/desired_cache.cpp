#include "inputs/desired_cache.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include <sodium.h>

#include "inputs/published_keys.hpp"
#include "model/fd.hpp"
#include "plan/render.hpp"
#include "store/headscale_mapping.hpp"
#include "store/store.hpp"

namespace wgf::inputs {
namespace {

// An entry of another version of the format is not readable: a miss, never misread.
constexpr std::string_view kMagic = "wg-fleet desired cache 5\n";
// More than any published key or key file holds; a larger file counts by its size and start.
constexpr size_t kInputReadMax = 64 * 1024;

// BLAKE2b-256: the key covers the whole configuration file (megabytes for a large fleet), and
// BLAKE2b is libsodium's fastest hash.
class Hasher {
public:
    Hasher() { crypto_generichash_init(&st_, nullptr, 0, std::tuple_size_v<CacheKey>); }
    ~Hasher() { sodium_memzero(&st_, sizeof st_); }
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;

    void bytes(std::string_view b) {
        u64(b.size());
        crypto_generichash_update(&st_, reinterpret_cast<const unsigned char*>(b.data()), b.size());
    }
    void u64(uint64_t v) {
        unsigned char b[8];
        for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
        crypto_generichash_update(&st_, b, sizeof b);
    }
    void opt(const std::optional<std::string>& s) {
        u64(s.has_value());
        if (s) bytes(*s);
    }
    CacheKey done() {
        CacheKey k{};
        crypto_generichash_final(&st_, k.data(), k.size());
        return k;
    }

private:
    crypto_generichash_state st_{};
};

// One input file as the load sees it: where it resolves to, what kind of file it is, and its
// bytes, or why it cannot be read. Not which inode: a published key rewritten with the same
// bytes (every apply publishes the node's own) is the same input.
CacheKey input_digest(const std::string& path) {
    Hasher h;
    h.bytes(path);
    h.bytes(resolved_path(path));
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    struct stat st {};
    if (fd.fd < 0 || fstat(fd.fd, &st) != 0) {
        h.bytes("error");
        h.u64(static_cast<uint64_t>(errno));
        return h.done();
    }
    h.bytes("file");
    h.u64(st.st_mode & S_IFMT);
    h.u64(static_cast<uint64_t>(st.st_size));
    if (!S_ISREG(st.st_mode)) return h.done();
    char buf[kInputReadMax];
    size_t n = 0;
    while (n < sizeof buf) {
        ssize_t got = read(fd.fd, buf + n, sizeof buf - n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += static_cast<size_t>(got);
    }
    h.bytes(std::string_view(buf, n));
    sodium_memzero(buf, n);
    return h.done();
}

class Writer {
public:
    std::string out;

    void u8(uint8_t v) { out.push_back(static_cast<char>(v)); }
    void u16(uint16_t v) { uint(v, 2); }
    void u32(uint32_t v) { uint(v, 4); }
    void u64(uint64_t v) { uint(v, 8); }
    void str(std::string_view s) {
        u32(static_cast<uint32_t>(s.size()));
        out.append(s);
    }
    void opt_str(const std::optional<std::string>& s) {
        u8(s.has_value());
        if (s) str(*s);
    }
    void key(const model::Key& k) { out.append(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size()); }
    void addr(const model::IpAddr& a) {
        u8(a.family);
        out.append(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size());
    }
    void prefix(const model::Prefix& p) {
        addr(p.addr);
        u8(p.len);
    }
    template <class Set>
    void prefixes(const Set& s) {
        u32(static_cast<uint32_t>(s.size()));
        for (const auto& p : s) prefix(p);
    }
    void strings(const std::vector<std::string>& v) {
        u32(static_cast<uint32_t>(v.size()));
        for (const auto& s : v) str(s);
    }

private:
    void uint(uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
    }
};

class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    bool ok() const { return ok_; }
    bool at_end() const { return pos_ == in_.size(); }

    uint8_t u8() { return static_cast<uint8_t>(uint(1)); }
    uint16_t u16() { return static_cast<uint16_t>(uint(2)); }
    uint32_t u32() { return static_cast<uint32_t>(uint(4)); }
    uint64_t u64() { return uint(8); }
    bool flag() {
        uint8_t v = u8();
        if (v > 1) ok_ = false;
        return v == 1;
    }
    std::string str() {
        uint32_t n = u32();
        auto b = take(n);
        return std::string(b);
    }
    std::optional<std::string> opt_str() {
        if (!flag()) return std::nullopt;
        return str();
    }
    model::Key key() {
        model::Key k;
        auto b = take(k.bytes.size());
        if (ok_) std::memcpy(k.bytes.data(), b.data(), k.bytes.size());
        return k;
    }
    model::IpAddr addr() {
        model::IpAddr a;
        a.family = u8();
        auto b = take(a.bytes.size());
        if (ok_) std::memcpy(a.bytes.data(), b.data(), a.bytes.size());
        if (a.family != 4 && a.family != 6) ok_ = false;
        return a;
    }
    model::Prefix prefix() {
        model::Prefix p;
        p.addr = addr();
        p.len = u8();
        if (ok_ && p.len > p.addr.bits()) ok_ = false;
        return p;
    }
    std::vector<model::Prefix> prefixes() {
        std::vector<model::Prefix> v;
        uint32_t n = count(18);
        v.reserve(n);
        for (uint32_t i = 0; i < n && ok_; ++i) v.push_back(prefix());
        return v;
    }
    std::vector<std::string> strings() {
        std::vector<std::string> v;
        uint32_t n = count(4);
        for (uint32_t i = 0; i < n && ok_; ++i) v.push_back(str());
        return v;
    }
    // A count of items of at least `min_size` bytes each: never more than the rest could hold.
    uint32_t count(size_t min_size) {
        uint32_t n = u32();
        if (ok_ && n > (in_.size() - pos_) / min_size) ok_ = false;
        return ok_ ? n : 0;
    }
    void fail() { ok_ = false; }

private:
    std::string_view take(size_t n) {
        if (!ok_ || in_.size() - pos_ < n) {
            ok_ = false;
            return {};
        }
        auto b = in_.substr(pos_, n);
        pos_ += n;
        return b;
    }
    uint64_t uint(int n) {
        auto b = take(static_cast<size_t>(n));
        uint64_t v = 0;
        for (size_t i = 0; i < b.size(); ++i) v |= uint64_t(static_cast<uint8_t>(b[i])) << (8 * i);
        return v;
    }

    std::string_view in_;
    size_t pos_ = 0;
    bool ok_ = true;
};

void write_state(Writer& w, const model::HostState& s) {
    w.u32(static_cast<uint32_t>(s.interfaces.size()));
    for (const auto& [name, i] : s.interfaces) {
        w.str(name);
        w.u8(i.listen_port.has_value());
        w.u16(i.listen_port.value_or(0));
        w.u8(i.mtu.has_value());
        w.u32(i.mtu.value_or(0));
        w.u8(i.up);
        w.u32(i.fwmark);
        w.u8(i.public_key.has_value());
        if (i.public_key) w.key(*i.public_key);
        w.prefixes(i.addresses);
        w.u32(static_cast<uint32_t>(i.peers.size()));
        for (const auto& [k, p] : i.peers) {
            w.key(p.public_key);
            w.u8(p.endpoint.has_value());
            if (p.endpoint) {
                w.str(p.endpoint->host);
                w.u16(p.endpoint->port);
            }
            w.prefixes(p.allowed_ips);
            w.u16(p.keepalive);
        }
    }
    w.u32(static_cast<uint32_t>(s.routes.size()));
    for (const auto& r : s.routes) {
        w.prefix(r.dst);
        w.str(r.dev);
        w.u8(r.src.has_value());
        if (r.src) w.addr(*r.src);
        w.u32(r.table);
    }
    w.u32(static_cast<uint32_t>(s.rules.size()));
    for (const auto& r : s.rules) {
        w.u8(r.family);
        w.u32(r.priority);
        w.u32(r.table);
        w.u32(r.fwmark);
        w.u8(r.invert);
        w.u8(r.suppress_prefixlength.has_value());
        w.u8(r.suppress_prefixlength.value_or(0));
    }
    w.u32(static_cast<uint32_t>(s.sysctls.size()));
    for (const auto& [k, v] : s.sysctls) {
        w.str(k);
        w.str(v);
    }
    w.u32(static_cast<uint32_t>(s.firewall.size()));
    for (const auto& [id, f] : s.firewall) {
        w.str(f.id);
        w.u8(static_cast<uint8_t>(f.kind));
        w.u8(static_cast<uint8_t>(f.proto));
        w.u16(f.port);
        w.str(f.iif);
        w.str(f.oif);
        w.u8(f.to.has_value());
        if (f.to) w.addr(*f.to);
        w.u16(f.to_port);
        w.u8(f.from.has_value());
        if (f.from) w.addr(*f.from);
        w.strings(f.not_oif);
    }
    w.u32(static_cast<uint32_t>(s.files.size()));
    for (const auto& [path, f] : s.files) {
        w.str(f.path);
        w.str(f.content);
        w.u32(f.mode);
    }
}

model::HostState read_state(Reader& r) {
    model::HostState s;
    for (uint32_t n = r.count(4); n-- && r.ok();) {
        model::WgInterface i;
        i.name = r.str();
        bool has_port = r.flag();
        uint16_t port = r.u16();
        if (has_port) i.listen_port = port;
        bool has_mtu = r.flag();
        uint32_t mtu = r.u32();
        if (has_mtu) i.mtu = mtu;
        i.up = r.flag();
        i.fwmark = r.u32();
        if (r.flag()) i.public_key = r.key();
        i.addresses = model::AddressSet(r.prefixes());
        for (uint32_t m = r.count(32); m-- && r.ok();) {
            model::WgPeer p;
            p.public_key = r.key();
            if (r.flag()) {
                model::Endpoint e;
                e.host = r.str();
                e.port = r.u16();
                p.endpoint = std::move(e);
            }
            p.allowed_ips = model::PrefixSet(r.prefixes());
            p.keepalive = r.u16();
            auto k = p.public_key;
            i.peers.emplace_hint(i.peers.end(), k, std::move(p));
        }
        auto name = i.name;
        s.interfaces.emplace_hint(s.interfaces.end(), std::move(name), std::move(i));
    }
    for (uint32_t n = r.count(4); n-- && r.ok();) {
        model::Route rt;
        rt.dst = r.prefix();
        rt.dev = r.str();
        if (r.flag()) rt.src = r.addr();
        rt.table = r.u32();
        s.routes.emplace_hint(s.routes.end(), std::move(rt));
    }
    for (uint32_t n = r.count(16); n-- && r.ok();) {
        model::PolicyRule pr;
        pr.family = r.u8();
        pr.priority = r.u32();
        pr.table = r.u32();
        pr.fwmark = r.u32();
        pr.invert = r.flag();
        const bool suppress = r.flag();
        const uint8_t len = r.u8();
        if (suppress) pr.suppress_prefixlength = len;
        s.rules.emplace_hint(s.rules.end(), pr);
    }
    for (uint32_t n = r.count(8); n-- && r.ok();) {
        auto k = r.str();
        s.sysctls.emplace_hint(s.sysctls.end(), std::move(k), r.str());
    }
    for (uint32_t n = r.count(8); n-- && r.ok();) {
        model::FwRule f;
        f.id = r.str();
        uint8_t kind = r.u8();
        uint8_t proto = r.u8();
        if (kind > static_cast<uint8_t>(model::FwKind::exit_masquerade) || proto > static_cast<uint8_t>(model::Proto::udp)) r.fail();
        f.kind = static_cast<model::FwKind>(kind);
        f.proto = static_cast<model::Proto>(proto);
        f.port = r.u16();
        f.iif = r.str();
        f.oif = r.str();
        if (r.flag()) f.to = r.addr();
        f.to_port = r.u16();
        if (r.flag()) f.from = r.addr();
        f.not_oif = r.strings();
        auto id = f.id;
        s.firewall.emplace_hint(s.firewall.end(), std::move(id), std::move(f));
    }
    for (uint32_t n = r.count(8); n-- && r.ok();) {
        model::ManagedFile f;
        f.path = r.str();
        f.content = r.str();
        f.mode = r.u32();
        auto path = f.path;
        s.files.emplace_hint(s.files.end(), std::move(path), std::move(f));
    }
    return s;
}

void write_labels(Writer& w, const model::Labels& l) {
    w.u32(static_cast<uint32_t>(l.interfaces.size()));
    for (const auto& [name, i] : l.interfaces) {
        w.str(name);
        w.str(i.fleet);
        w.str(i.private_key_file);
        w.u8(i.generate_key);
        w.strings(i.pending);
        w.u32(static_cast<uint32_t>(i.peer_names.size()));
        for (const auto& [k, n] : i.peer_names) {
            w.key(k);
            w.str(n);
        }
    }
    w.u8(l.reload.has_value());
    w.str(l.reload ? l.reload->dir : std::string());
    w.str(l.reload ? l.reload->command : std::string());
    w.u8(l.foreign_accept);
}

model::Labels read_labels(Reader& r) {
    model::Labels l;
    for (uint32_t n = r.count(4); n-- && r.ok();) {
        auto name = r.str();
        model::InterfaceLabels i;
        i.fleet = r.str();
        i.private_key_file = r.str();
        i.generate_key = r.flag();
        i.pending = r.strings();
        for (uint32_t m = r.count(36); m-- && r.ok();) {
            auto k = r.key();
            i.peer_names.emplace_hint(i.peer_names.end(), k, r.str());
        }
        l.interfaces.emplace_hint(l.interfaces.end(), std::move(name), std::move(i));
    }
    const bool reload = r.flag();
    model::FileReload fr;
    fr.dir = r.str();
    fr.command = r.str();
    if (reload) l.reload = std::move(fr);
    l.foreign_accept = r.flag();
    return l;
}

}  // namespace

std::vector<std::string> cache_inputs(const model::Config& cfg) {
    std::vector<std::string> out = secret_files(cfg);
    // serve's store: a running serve's commits are in its write-ahead log until a checkpoint
    // copies them into the database, so the store's content is the two files together.
    out.push_back(serve::store_path(cfg.state_dir));
    out.push_back(serve::store_path(cfg.state_dir) + "-wal");
    for (const auto& [fname, f] : cfg.fleets)
        if (f.headscale) out.push_back(serve::headscale::mapping_path(cfg.state_dir, fname));
    if (!cfg.keys_dir) return out;
    for (const auto& [fname, f] : cfg.fleets) {
        for (const auto& [n, m] : f.controllers) out.push_back(plan::published_key_path(*cfg.keys_dir, fname, n));
        for (const auto& [n, m] : f.peers)
            if (!m.dynamic) out.push_back(plan::published_key_path(*cfg.keys_dir, fname, n));
        if (f.style == model::FleetStyle::subnet) out.push_back(plan::published_key_path(*cfg.keys_dir, fname, f.server));
    }
    return out;
}

std::vector<CacheKey> input_digests(const std::vector<std::string>& inputs) {
    std::vector<CacheKey> out;
    out.reserve(inputs.size());
    for (const auto& path : inputs) out.push_back(input_digest(path));
    return out;
}

CacheKey cache_key(const CacheContext& ctx, const std::vector<config::SourceFile>& files, const std::string& state_dir,
                   const std::vector<CacheKey>& inputs) {
    Hasher h;
    h.bytes(kMagic);
    h.bytes(ctx.build_id);
    h.bytes(ctx.node);
    const LoadOptions& o = ctx.options;
    h.bytes(o.config);
    h.opt(o.dropin_dir);
    h.opt(o.state_dir);
    h.opt(o.keys_only_from);
    h.opt(o.files_root);
    h.u64(files.size());
    for (const auto& f : files) {
        h.bytes(f.name);
        h.bytes(f.text);
    }
    // The load refuses a published key that resolves inside state_dir.
    h.bytes(state_dir);
    h.bytes(resolved_path(state_dir));
    h.u64(inputs.size());
    for (const auto& d : inputs) h.bytes(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
    return h.done();
}

CachedDesired cache_entry(const CacheContext& ctx, const Loaded& l, std::vector<CacheKey>* digests) {
    const model::Config& cfg = l.cfg();
    auto inputs = cache_inputs(cfg);
    auto d = input_digests(inputs);
    auto key = cache_key(ctx, l.files, cfg.state_dir, d);
    if (digests) *digests = std::move(d);
    return CachedDesired{.key = key,
                         .inputs = std::move(inputs),
                         .userspace = cfg.userspace,
                         .notes = config::render_all(l.diags, l.sources, true, config::Pending::summary),
                         .notes_each = config::render_all(l.diags, l.sources, true, config::Pending::each),
                         .desired = {}};
}

std::string encode_cached(const CachedDesired& c) {
    Writer w;
    w.out.append(kMagic);
    w.out.append(reinterpret_cast<const char*>(c.key.data()), c.key.size());
    w.strings(c.inputs);
    w.opt_str(c.userspace);
    w.str(c.notes);
    w.str(c.notes_each);
    w.str(c.desired.state_dir);
    w.opt_str(c.desired.keys_dir);
    w.strings(std::vector<std::string>(c.desired.exclusive.begin(), c.desired.exclusive.end()));
    write_state(w, c.desired.state);
    write_labels(w, c.desired.labels);
    return std::move(w.out);
}

namespace {

// The fields before the desired state: enough for lookup_cached to compare the key, so a
// miss does not decode the desired state (at 10,000 forwards, most of the bytes).
void read_head(Reader& r, CachedDesired& c) {
    for (auto& b : c.key) b = r.u8();
    c.inputs = r.strings();
    c.userspace = r.opt_str();
    c.notes = r.str();
    c.notes_each = r.str();
    c.desired.state_dir = r.str();
    c.desired.keys_dir = r.opt_str();
    for (auto& s : r.strings()) c.desired.exclusive.insert(std::move(s));
}

// The rest; false when the bytes are not a whole entry.
bool read_body(Reader& r, CachedDesired& c) {
    c.desired.state = read_state(r);
    c.desired.labels = read_labels(r);
    return r.ok() && r.at_end();
}

// What follows the magic line; none for bytes of another format.
std::optional<std::string_view> cached_payload(const std::string& bytes) {
    if (bytes.compare(0, kMagic.size(), kMagic) != 0) return std::nullopt;
    return std::string_view(bytes).substr(kMagic.size());
}

}  // namespace

std::optional<CachedDesired> decode_cached(const std::string& bytes) {
    auto payload = cached_payload(bytes);
    if (!payload) return std::nullopt;
    Reader r(*payload);
    CachedDesired c;
    read_head(r, c);
    if (!read_body(r, c)) return std::nullopt;
    return c;
}

namespace {

constexpr std::string_view kSnapshotMagic = "wg-fleet try snapshot 1\n";

}  // namespace

std::string encode_snapshot(const model::HostState& state, const model::Labels& labels) {
    Writer w;
    w.out.append(kSnapshotMagic);
    write_state(w, state);
    write_labels(w, labels);
    w.u32(static_cast<uint32_t>(state.foreign_rules.size()));
    for (const auto& [key, f] : state.foreign_rules) {
        w.str(f.family);
        w.str(f.table);
        w.str(f.chain);
        w.str(f.id);
        w.u8(f.as_built);
    }
    return std::move(w.out);
}

std::optional<std::pair<model::HostState, model::Labels>> decode_snapshot(std::string_view bytes) {
    if (bytes.substr(0, kSnapshotMagic.size()) != kSnapshotMagic) return std::nullopt;
    Reader r(bytes.substr(kSnapshotMagic.size()));
    std::pair<model::HostState, model::Labels> out;
    out.first = read_state(r);
    out.second = read_labels(r);
    for (uint32_t n = r.count(17); n-- && r.ok();) {
        model::ForeignRule f;
        f.family = r.str();
        f.table = r.str();
        f.chain = r.str();
        f.id = r.str();
        f.as_built = r.flag();
        out.first.foreign_rules.emplace(f.key(), std::move(f));
    }
    if (!r.ok() || !r.at_end()) return std::nullopt;
    return out;
}

std::string desired_digest(const apply::Desired& d) {
    Writer w;
    w.str(d.state_dir);
    w.opt_str(d.keys_dir);
    w.strings(std::vector<std::string>(d.exclusive.begin(), d.exclusive.end()));
    write_state(w, d.state);
    write_labels(w, d.labels);
    std::array<unsigned char, crypto_hash_sha256_BYTES> h{};
    crypto_hash_sha256(h.data(), reinterpret_cast<const unsigned char*>(w.out.data()), w.out.size());
    std::string hex(h.size() * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
    hex.pop_back();
    return hex;
}

std::optional<CachedDesired> lookup_cached(backend::DesiredCacheStore& store, const CacheContext& ctx, std::string* why) {
    auto say = [&](const char* reason) -> std::optional<CachedDesired> {
        if (why) *why = reason;
        return std::nullopt;
    };
    if (ctx.build_id.empty()) return say("this binary has no build id");
    auto bytes = store.load();
    if (!bytes) return say("none kept");
    auto payload = cached_payload(*bytes);
    if (!payload) return say("not readable");
    Reader r(*payload);
    CachedDesired c;
    read_head(r, c);
    if (!r.ok()) return say("not readable");
    config::Sources sources;
    config::Diagnostics diags;
    const LoadOptions& o = ctx.options;
    auto files = config::read_config_files(o.config, o.dropin_dir ? *o.dropin_dir : config::default_dropin_dir(o.config), sources, diags);
    if (diags.has_errors()) return say("the configuration cannot be read");
    if (sodium_memcmp(cache_key(ctx, files, c.desired.state_dir, input_digests(c.inputs)).data(), c.key.data(), c.key.size()) != 0)
        return say("inputs changed");
    if (!read_body(r, c)) return say("not readable");
    return c;
}

}  // namespace wgf::inputs
