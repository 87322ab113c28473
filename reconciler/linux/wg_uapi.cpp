// WireGuard over the UAPI socket: the text protocol (parse/format) and its transport.
#include "linux/wg_uapi.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "linux/wg_select.hpp"
#include "model/fd.hpp"

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using backend::WgDeviceChange;
using backend::WgDeviceLive;

void wipe_memory(void* p, size_t n) noexcept {
    if (p && n) sodium_memzero(p, n);
}

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// -1 for a character that is not a hex digit.
constexpr std::array<int8_t, 256> kHexValue = [] {
    std::array<int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = static_cast<int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[static_cast<size_t>(c)] = static_cast<int8_t>(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; ++c) t[static_cast<size_t>(c)] = static_cast<int8_t>(c - 'A' + 10);
    return t;
}();

bool key_from_hex(std::string_view text, std::array<uint8_t, 32>& out) {
    if (text.size() != 64) return false;
    int bad = 0;
    for (size_t i = 0; i < 32; ++i) {
        int hi = kHexValue[static_cast<uint8_t>(text[2 * i])], lo = kHexValue[static_cast<uint8_t>(text[2 * i + 1])];
        bad |= hi | lo;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return bad >= 0;
}

template <class S>
void append_hex(S& out, const std::array<uint8_t, 32>& key) {
    for (uint8_t b : key) {
        out.push_back(kHexDigits[b >> 4]);
        out.push_back(kHexDigits[b & 0xf]);
    }
}

template <class S>
void append_uint(S& out, uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;
    out.append(buf, static_cast<size_t>(end - buf));
}

std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

// errno=N: wireguard-go sends -N, the protocol description N.
std::optional<long long> parse_errno(std::string_view s) {
    bool neg = !s.empty() && s[0] == '-';
    auto v = parse_uint(neg ? s.substr(1) : s, 0x7fffffff);
    if (!v) return std::nullopt;
    return static_cast<long long>(*v);
}

// An IP literal without allocating: a copy into a stack buffer for inet_pton.
std::optional<model::IpAddr> parse_ip(std::string_view s) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (s.empty() || s.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    model::IpAddr a;
    if (s.find(':') != std::string_view::npos) {
        if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
        a.family = 6;
    } else {
        if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
        a.family = 4;
    }
    return a;
}

template <class S>
void append_ip(S& out, const model::IpAddr& a) {
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf)) out.append(buf);
}

std::optional<model::Prefix> parse_prefix(std::string_view s) {
    auto slash = s.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto a = parse_ip(s.substr(0, slash));
    if (!a) return std::nullopt;
    auto len = parse_uint(s.substr(slash + 1), a->bits());
    if (!len) return std::nullopt;
    return model::Prefix{*a, static_cast<uint8_t>(*len)}.masked();
}

// "1.2.3.4:51820" or "[fd00::1]:51820" (a zone, "[fe80::1%eth0]:51820", is kept as given).
std::optional<model::Endpoint> parse_endpoint(std::string_view s) {
    std::string_view host, port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return std::nullopt;
    }
    auto p = parse_uint(port, 65535);
    if (!p || *p == 0) return std::nullopt;
    auto zone = host.find('%');
    auto a = parse_ip(host.substr(0, zone));
    if (!a || (zone != std::string_view::npos && !a->is_v6())) return std::nullopt;
    model::Endpoint e;
    e.port = static_cast<uint16_t>(*p);
    // Canonical text, so live compares equal to desired however the daemon spells it. inet_pton
    // accepts IPv4 only in its one canonical dotted form, so that text is kept as it is.
    if (zone != std::string_view::npos || a->is_v4()) e.host = std::string(host);
    else e.host = a->str();
    return e;
}

std::string quote(std::string_view v) {
    constexpr size_t kMax = 80;
    std::string out = "'";
    out.append(v.substr(0, kMax));
    if (v.size() > kMax) out += "...";
    return out + "'";
}

}  // namespace

// ---- the text layer -------------------------------------------------------------------------

namespace uapi {

GetReplyParser::GetReplyParser(std::string ifname) : ifname_(std::move(ifname)) {}

Step GetReplyParser::fail(const std::string& why) {
    error_ = errno_error(EPROTO, "read WireGuard device " + ifname_ + ": UAPI reply line " +
                                     std::to_string(line_no_) + ": " + why);
    return Step::error;
}

bool GetReplyParser::flush_peer() {
    if (!in_peer_) return true;
    auto& ips = peer_.allowed_ips;
    std::sort(ips.begin(), ips.end());
    ips.erase(std::unique(ips.begin(), ips.end()), ips.end());
    model::Key key = peer_.public_key;
    auto inserted = live_.device.peers.try_emplace(key, std::move(peer_)).second;
    if (!inserted) return false;
    live_.stats.emplace(key, stats_);
    peer_ = model::WgPeer{};
    stats_ = backend::WgPeerStats{};
    in_peer_ = false;
    return true;
}

namespace {

enum class Field {
    other, errno_, private_key, listen_port, fwmark, public_key, preshared_key, endpoint, allowed_ip,
    keepalive, last_handshake_sec, rx_bytes, tx_bytes
};

// By length first: at most two comparisons per line, which matters at 180,000 lines.
Field classify(std::string_view k) {
    switch (k.size()) {
        case 5: return k == "errno" ? Field::errno_ : Field::other;
        case 6: return k == "fwmark" ? Field::fwmark : Field::other;
        case 8:
            if (k == "endpoint") return Field::endpoint;
            if (k == "rx_bytes") return Field::rx_bytes;
            return k == "tx_bytes" ? Field::tx_bytes : Field::other;
        case 10:
            if (k == "allowed_ip") return Field::allowed_ip;
            return k == "public_key" ? Field::public_key : Field::other;
        case 11:
            if (k == "listen_port") return Field::listen_port;
            return k == "private_key" ? Field::private_key : Field::other;
        case 13: return k == "preshared_key" ? Field::preshared_key : Field::other;
        case 23: return k == "last_handshake_time_sec" ? Field::last_handshake_sec : Field::other;
        case 29: return k == "persistent_keepalive_interval" ? Field::keepalive : Field::other;
        default: return Field::other;
    }
}

bool is_device_field(Field f) { return f == Field::private_key || f == Field::listen_port || f == Field::fwmark; }

}  // namespace

Step GetReplyParser::line(std::string_view text) {
    if (error_) return Step::error;
    if (done_) return Step::done;
    ++line_no_;
    if (text.empty()) {
        if (!errno_) return fail("reply ended without errno=");
        done_ = true;
        return Step::done;
    }
    if (errno_) return fail("data after errno=");
    auto eq = text.find('=');
    if (eq == std::string_view::npos) {
        // A mangled key line may hold key material: never quote those.
        bool secret = text.substr(0, 7) == "private" || text.substr(0, 9) == "preshared";
        return fail(secret ? "no '=' in a " + std::string(text.substr(0, 7)) + "... line" : "no '=' in " + quote(text));
    }
    std::string_view key = text.substr(0, eq), value = text.substr(eq + 1);
    const Field field = classify(key);

    if (field == Field::other) return Step::more;  // protocol_version, *_nsec, extensions: as wg does
    if (field == Field::errno_) {
        auto e = parse_errno(value);
        if (!e) return fail("errno " + quote(value) + " is not a number");
        errno_ = *e;
        return Step::more;
    }
    if (field == Field::public_key) {
        if (!flush_peer()) return fail("peer " + peer_.public_key.base64() + " listed twice");
        if (!key_from_hex(value, peer_.public_key.bytes)) return fail("public_key is not 64 hex digits");
        in_peer_ = true;
        return Step::more;
    }
    if (in_peer_ == is_device_field(field)) {
        if (in_peer_) return fail(std::string(key) + " inside the peer " + peer_.public_key.base64());
        return fail(std::string(key) + " before any public_key");
    }

    switch (field) {
        case Field::private_key: {
            std::array<uint8_t, 32> raw{};
            bool ok = key_from_hex(value, raw);
            if (ok) live_.device.public_key = model::SecretKey(raw).public_key();
            wipe_memory(raw.data(), raw.size());
            // Never quote the value: it is the private key.
            if (!ok) return fail("private_key is not 64 hex digits");
            break;
        }
        case Field::listen_port: {
            auto v = parse_uint(value, 65535);
            if (!v) return fail("listen_port " + quote(value) + " is not 0..65535");
            port_ = static_cast<uint16_t>(*v);
            break;
        }
        case Field::fwmark: {
            auto v = parse_uint(value, 0xffffffffu);
            if (!v) return fail("fwmark " + quote(value) + " is not 0..4294967295");
            live_.fwmark = *v ? std::optional<uint32_t>(static_cast<uint32_t>(*v)) : std::nullopt;
            break;
        }
        case Field::allowed_ip: {
            auto p = parse_prefix(value);
            if (!p) return fail("allowed_ip " + quote(value) + " is not an IP prefix");
            peer_.allowed_ips.push_back(*p);
            break;
        }
        case Field::endpoint: {
            auto e = parse_endpoint(value);
            if (!e) return fail("endpoint " + quote(value) + " is not IP:PORT or [IPv6]:PORT");
            peer_.endpoint = std::move(*e);
            break;
        }
        case Field::keepalive: {
            auto v = parse_uint(value, 65535);
            if (!v) return fail("persistent_keepalive_interval " + quote(value) + " is not 0..65535");
            peer_.keepalive = static_cast<uint16_t>(*v);
            break;
        }
        case Field::last_handshake_sec: {
            auto v = parse_uint(value, 0x7fffffffffffffffULL);
            if (!v) return fail("last_handshake_time_sec " + quote(value) + " is not a number");
            stats_.last_handshake = static_cast<int64_t>(*v);
            break;
        }
        case Field::rx_bytes:
        case Field::tx_bytes: {
            auto v = parse_uint(value, UINT64_MAX);
            if (!v) return fail(std::string(key) + " " + quote(value) + " is not a number");
            (field == Field::rx_bytes ? stats_.rx_bytes : stats_.tx_bytes) = *v;
            break;
        }
        case Field::preshared_key: {
            // Not part of the model; checked only for shape, never quoted.
            std::array<uint8_t, 32> raw{};
            bool ok = key_from_hex(value, raw);
            wipe_memory(raw.data(), raw.size());
            if (!ok) return fail("preshared_key is not 64 hex digits");
            break;
        }
        default: break;
    }
    return Step::more;
}

Result<WgDeviceLive> GetReplyParser::finish() {
    if (error_) return *error_;
    if (!done_) {
        fail("reply ended before its blank line");
        return *error_;
    }
    if (*errno_ != 0) return errno_error(static_cast<int>(*errno_), "read WireGuard device " + ifname_);
    if (!flush_peer()) {
        fail("peer " + peer_.public_key.base64() + " listed twice");
        return *error_;
    }
    live_.device.name = ifname_;
    live_.device.listen_port = port_.value_or(0);
    return std::move(live_);
}

Result<WgDeviceLive> parse_get_reply(std::string_view text, const std::string& ifname) {
    GetReplyParser parser(ifname);
    size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;  // a partial last line: the reply is truncated
        if (parser.line(text.substr(pos, nl - pos)) != Step::more) break;
        pos = nl + 1;
    }
    return parser.finish();
}

Step SetReplyParser::line(std::string_view text) {
    if (error_) return Step::error;
    auto fail = [&](const std::string& why) {
        error_ = errno_error(EPROTO, "set WireGuard device " + ifname_ + ": UAPI reply: " + why);
        return Step::error;
    };
    if (text.empty()) {
        if (!errno_) return fail("no errno= before the blank line");
        done_ = true;
        return Step::done;
    }
    if (errno_) return fail("data after errno=: " + quote(text));
    if (text.substr(0, 6) != "errno=") return fail("expected errno=N, got " + quote(text));
    errno_ = parse_errno(text.substr(6));
    if (!errno_) return fail("errno " + quote(text.substr(6)) + " is not a number");
    return Step::more;
}

Status SetReplyParser::finish() const {
    if (error_) return *error_;
    if (!done_)
        return errno_error(EPROTO, "set WireGuard device " + ifname_ + ": UAPI reply ended before its blank line");
    if (*errno_ != 0) return errno_error(static_cast<int>(*errno_), "set WireGuard device " + ifname_);
    return Status::ok();
}

Status parse_set_reply(std::string_view text, const std::string& ifname) {
    SetReplyParser parser(ifname);
    size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;
        if (parser.line(text.substr(pos, nl - pos)) != Step::more) break;
        pos = nl + 1;
    }
    return parser.finish();
}

Result<WipedString> format_set_request(const WgDeviceChange& change) {
    WipedString out;
    size_t estimate = 128;
    for (const auto& p : change.peers) estimate += 160 + 52 * p.allowed_ips.size();
    out.reserve(estimate);

    out += "set=1\n";
    if (change.private_key) {
        out += "private_key=";
        append_hex(out, change.private_key->raw());
        out += '\n';
    }
    if (change.listen_port) {
        out += "listen_port=";
        append_uint(out, *change.listen_port);
        out += '\n';
    }
    if (change.fwmark) {
        out += "fwmark=";
        append_uint(out, *change.fwmark);
        out += '\n';
    }
    if (change.replace_peers) out += "replace_peers=true\n";
    for (const auto& p : change.peers) {
        out += "public_key=";
        append_hex(out, p.public_key.bytes);
        out += '\n';
        if (p.remove) {
            out += "remove=true\n";
            continue;
        }
        // Before any other line of the peer: the daemon must not create it first.
        if (p.update_only) out += "update_only=true\n";
        if (p.endpoint) {
            const auto& e = *p.endpoint;
            auto a = parse_ip(e.host);
            if (!a || e.port == 0)
                return errno_error(EINVAL, "set WireGuard device " + change.ifname + ": endpoint " + quote(e.str()) +
                                               " of peer " + p.public_key.base64() +
                                               " must be an IP literal with a port (resolve names first)");
            out += "endpoint=";
            if (a->is_v6()) out += '[';
            append_ip(out, *a);
            if (a->is_v6()) out += ']';
            out += ':';
            append_uint(out, e.port);
            out += '\n';
        }
        if (p.keepalive) {
            out += "persistent_keepalive_interval=";
            append_uint(out, *p.keepalive);
            out += '\n';
        }
        // Before the allowed_ip lines: the daemon applies lines in order.
        if (p.replace_allowed_ips) out += "replace_allowed_ips=true\n";
        for (const auto& ip : p.allowed_ips) {
            auto m = ip.masked();
            out += "allowed_ip=";
            append_ip(out, m.addr);
            out += '/';
            append_uint(out, m.len);
            out += '\n';
        }
    }
    out += '\n';
    return out;
}

}  // namespace uapi

// ---- the transport ------------------------------------------------------------------------------

namespace {

void set_timeouts(int fd, int timeout_ms) {
    struct timeval tv {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Status send_all(int fd, const char* data, size_t size, const std::string& what) {
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

// Reads the reply and feeds it to the parser line by line, straight from one large buffer: no
// per-line allocation, one recv per buffer fill. The buffer is wiped before it is freed because
// a get reply carries the private key.
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

std::string socket_path_in(const std::string& dir, const std::string& ifname) { return dir + "/" + ifname + ".sock"; }

Error no_device(int err, const std::string& what, const std::string& path) {
    if (err == ENOENT) return errno_error(ENODEV, what + " (no UAPI socket " + path + ")");
    if (err == ECONNREFUSED)
        return errno_error(ENODEV, what + " (" + path + " refuses connections: its userspace process is gone)");
    return errno_error(err, what + ": connect to " + path);
}

// One exchange that carries no secret and changes nothing: proves the daemon accepted us.
bool ping(int fd, const std::string& ifname) {
    static constexpr char kEmptySet[] = "set=1\n\n";
    if (!send_all(fd, kEmptySet, sizeof kEmptySet - 1, "ping")) return false;
    uapi::SetReplyParser parser(ifname);
    if (!read_reply(fd, parser, "ping")) return false;
    return parser.finish().is_ok();
}

// The inode of the socket at the other end of a connected AF_UNIX socket, from sock_diag.
std::optional<uint32_t> unix_peer_inode(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::nullopt;
    mnl_socket* nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
    if (!nl) return std::nullopt;
    struct Close {
        mnl_socket* s;
        ~Close() { mnl_socket_close(s); }
    } closer{nl};
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return std::nullopt;

    alignas(nlmsghdr) char buf[8192];
    auto* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
    auto* req = static_cast<unix_diag_req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(unix_diag_req)));
    req->sdiag_family = AF_UNIX;
    req->udiag_states = ~0u;
    req->udiag_ino = static_cast<uint32_t>(st.st_ino);
    req->udiag_show = UDIAG_SHOW_PEER;
    req->udiag_cookie[0] = req->udiag_cookie[1] = ~0u;  // any cookie: look up by inode
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return std::nullopt;
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n <= 0) return std::nullopt;

    std::optional<uint32_t> peer;
    auto on_msg = [](const nlmsghdr* m, void* data) -> int {
        const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(m));
        for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(m, sizeof(unix_diag_msg)));
             mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr))); attr = mnl_attr_next(attr)) {
            if (mnl_attr_get_type(attr) == UNIX_DIAG_PEER && mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
                *static_cast<std::optional<uint32_t>*>(data) = mnl_attr_get_u32(attr);
        }
        return MNL_CB_OK;
    };
    if (mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, mnl_socket_get_portid(nl), on_msg, &peer) < 0)
        return std::nullopt;
    return peer;
}

bool process_holds(pid_t pid, const std::string& link_text) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = opendir(dir.c_str());
    if (!d) return false;
    bool found = false;
    char target[64];
    while (auto* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (n > 0 && std::string_view(target, static_cast<size_t>(n)) == link_text) {
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

bool process_running(pid_t pid) {
    // A zombie still answers kill(pid, 0); its stat state says whether it still runs.
    FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
    if (!f) return false;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

std::string netns_id(const std::string& proc_path) {
    struct stat st {};
    if (stat(proc_path.c_str(), &st) != 0) return {};
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// RTM_DELLINK by name in the calling thread's namespace; 0 or an errno.
int delete_link(const std::string& ifname) {
    mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl) return errno;
    struct Close {
        mnl_socket* s;
        ~Close() { mnl_socket_close(s); }
    } closer{nl};
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return errno;
    alignas(nlmsghdr) char buf[8192];
    auto* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_DELLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = static_cast<uint32_t>(time(nullptr));
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname.c_str());
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return errno;
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0) return errno;
    if (mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, mnl_socket_get_portid(nl), nullptr, nullptr) < 0)
        return errno;
    return 0;
}

void sleep_ms(int ms) {
    struct timespec ts {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, nullptr);
}

}  // namespace

int uapi_connect(const std::string& socket_dir, const std::string& ifname) {
    if (!model::valid_ifname(ifname)) return -EINVAL;
    std::string path = socket_path_in(socket_dir, ifname);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    while (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno == EINTR) continue;
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

std::optional<pid_t> uapi_server_pid(const std::string& socket_dir, const std::string& ifname) {
    int raw = uapi_connect(socket_dir, ifname);
    if (raw < 0) return std::nullopt;
    model::Fd fd(raw);
    set_timeouts(fd.fd, 2000);
    ucred cred{};
    socklen_t len = sizeof cred;
    pid_t listener = getsockopt(fd.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
    // Until the daemon has accepted, the peer socket is in no process's descriptor table.
    if (!ping(fd.fd, ifname)) return std::nullopt;
    auto peer = unix_peer_inode(fd.fd);
    if (!peer) {
        // No sock_diag for AF_UNIX (CONFIG_UNIX_DIAG off): the listener's pid is the best guess.
        if (listener > 0 && process_running(listener)) return listener;
        return std::nullopt;
    }
    std::string link_text = "socket:[" + std::to_string(*peer) + "]";
    if (listener > 0 && process_holds(listener, link_text)) return listener;
    DIR* proc = opendir("/proc");
    if (!proc) return std::nullopt;
    std::optional<pid_t> found;
    while (auto* e = readdir(proc)) {
        pid_t pid = 0;
        auto [p, ec] = std::from_chars(e->d_name, e->d_name + std::strlen(e->d_name), pid);
        if (ec != std::errc() || *p != '\0' || pid <= 0 || pid == getpid()) continue;
        if (process_holds(pid, link_text)) {
            found = pid;
            break;
        }
    }
    closedir(proc);
    return found;
}

bool uapi_ping(const std::string& socket_dir, const std::string& ifname, int timeout_ms) {
    int raw = uapi_connect(socket_dir, ifname);
    if (raw < 0) return false;
    model::Fd fd(raw);
    set_timeouts(fd.fd, timeout_ms);
    return ping(fd.fd, ifname);
}

WgUapi::WgUapi(UapiOptions options) : options_(std::move(options)) {}

std::string WgUapi::socket_path(const std::string& ifname) const { return socket_path_in(options_.socket_dir, ifname); }

bool WgUapi::has_device(const std::string& ifname) const {
    int fd = uapi_connect(options_.socket_dir, ifname);
    if (fd < 0) return false;
    close(fd);
    return true;
}

bool WgUapi::has_socket(const std::string& ifname) const {
    struct stat st {};
    return model::valid_ifname(ifname) && stat(socket_path(ifname).c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::vector<std::string> WgUapi::list_devices() {
    std::vector<std::string> out;
    DIR* d = opendir(options_.socket_dir.c_str());
    if (!d) return out;
    while (auto* e = readdir(d)) {
        std::string_view name = e->d_name;
        if (name.size() <= 5 || name.substr(name.size() - 5) != ".sock") continue;
        std::string ifname(name.substr(0, name.size() - 5));
        if (has_device(ifname)) out.push_back(std::move(ifname));
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

Result<WgDeviceLive> WgUapi::read_device(const std::string& ifname) {
    const std::string what = "read WireGuard device " + ifname;
    int raw = uapi_connect(options_.socket_dir, ifname);
    if (raw < 0) return no_device(-raw, what, socket_path(ifname));
    model::Fd fd(raw);
    set_timeouts(fd.fd, options_.io_timeout_ms);
    static constexpr char kGet[] = "get=1\n\n";
    if (auto s = send_all(fd.fd, kGet, sizeof kGet - 1, what); !s) return s.error();
    uapi::GetReplyParser parser(ifname);
    if (auto s = read_reply(fd.fd, parser, what); !s) return s.error();
    return parser.finish();
}

Status WgUapi::set_device(const WgDeviceChange& change) {
    const std::string what = "set WireGuard device " + change.ifname;
    auto request = uapi::format_set_request(change);
    if (!request) return request.error();
    int raw = uapi_connect(options_.socket_dir, change.ifname);
    if (raw < 0) return no_device(-raw, what, socket_path(change.ifname));
    model::Fd fd(raw);
    set_timeouts(fd.fd, options_.io_timeout_ms);
    auto sent = send_all(fd.fd, request->data(), request->size(), what);
    uapi::SetReplyParser parser(change.ifname);
    auto got = read_reply(fd.fd, parser, what);
    // A daemon that rejects a line answers at once and drops the rest of a long request (the
    // send then fails with EPIPE): its errno, when it arrived, is the error worth reporting.
    if (!sent) {
        auto answer = parser.finish();
        return answer.is_ok() || answer.error().code == EPROTO ? sent : answer;
    }
    if (!got) return got;
    return parser.finish();
}

Status WgUapi::create_device(const std::string& ifname) {
    const std::string what = "create WireGuard device " + ifname;
    std::string why;
    if (!model::valid_ifname(ifname, &why)) return errno_error(EINVAL, what + ": " + why);
    if (has_device(ifname)) return errno_error(EEXIST, what + ": " + socket_path(ifname) + " already answers");
    auto argv = resolve_userspace_command(options_.userspace_command);
    if (!argv) return Error{argv.error().code, what + ": " + argv.error().message};
    return start_userspace(*argv, ifname, options_.socket_dir, options_.start_timeout_ms);
}

Status WgUapi::delete_device(const std::string& ifname) {
    const std::string what = "delete WireGuard device " + ifname;
    int raw = uapi_connect(options_.socket_dir, ifname);
    if (raw == -ECONNREFUSED) unlink(socket_path(ifname).c_str());  // its process is gone already
    if (raw < 0) return no_device(-raw, what, socket_path(ifname));
    close(raw);

    auto pid = uapi_server_pid(options_.socket_dir, ifname);
    // The socket directory is shared by every network namespace: only delete the link when the
    // process serves a tun in ours; otherwise a same-named link here belongs to someone else.
    bool same_netns = !pid || netns_id("/proc/" + std::to_string(*pid) + "/ns/net") == netns_id("/proc/thread-self/ns/net");
    if (same_netns) {
        int err = delete_link(ifname);
        if (err != 0 && err != ENODEV) return errno_error(err, what + ": delete link");
    } else {
        kill(*pid, SIGTERM);
    }

    auto gone = [&] {
        for (int waited = 0; waited <= options_.stop_timeout_ms; waited += 20) {
            int fd = uapi_connect(options_.socket_dir, ifname);
            if (fd < 0) {
                // A daemon killed before it could clean up leaves its socket: remove it, as wg does.
                if (fd == -ECONNREFUSED) unlink(socket_path(ifname).c_str());
                return true;
            }
            close(fd);
            sleep_ms(20);
        }
        return false;
    };
    if (gone()) return Status::ok();
    // The implementation ignored the loss of its tun: ask it to stop.
    if (pid && process_running(*pid)) {
        kill(*pid, SIGTERM);
        if (gone()) return Status::ok();
    }
    return errno_error(ETIMEDOUT, what + ": " + socket_path(ifname) + " still answers " +
                                      std::to_string(options_.stop_timeout_ms) + " ms after the link was deleted");
}

}  // namespace wgf::linux_
