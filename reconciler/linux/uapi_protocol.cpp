// The UAPI text protocol: formatting `set=1` requests, parsing the replies to `get=1` and
// `set=1`. Pure: no socket, no process; the transport (uapi_socket.cpp) feeds it lines.
#include "linux/uapi_protocol.hpp"

#include <arpa/inet.h>
#include <sodium.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

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
        // NOLINTNEXTLINE(bugprone-signed-char-misuse): the table is int8_t on purpose, -1 marks a non-hex byte
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


namespace uapi {

GetReplyParser::GetReplyParser(std::string ifname) : ifname_(std::move(ifname)) {}

Step GetReplyParser::fail_at(size_t line, const std::string& why) {
    error_ = errno_error(EPROTO, "read WireGuard device " + ifname_ + ": UAPI reply line " + std::to_string(line) + ": " + why);
    return Step::error;
}

void GetReplyParser::flush_peer() {
    if (!in_peer_) return;
    listed_.push_back(Listed{.peer = std::move(peer_), .stats = stats_, .line = peer_line_});
    peer_ = model::WgPeer{};
    stats_ = backend::WgPeerStats{};
    in_peer_ = false;
}

// The peers sorted once, by key: each map is then built in order, one step per peer instead of
// a search of the tree (with its nodes laid out in key order for the walks that follow), and a
// peer listed twice sits next to itself.
bool GetReplyParser::build_peers() {
    std::vector<std::pair<model::Key, size_t>> order;
    order.reserve(listed_.size());
    for (size_t i = 0; i < listed_.size(); ++i) order.emplace_back(listed_[i].peer.public_key, i);
    std::sort(order.begin(), order.end());
    // Of the peers listed twice, the one whose second listing comes first.
    const Listed* twice = nullptr;
    for (size_t i = 1; i < order.size(); ++i)
        if (order[i].first == order[i - 1].first && (!twice || listed_[order[i].second].line < twice->line))
            twice = &listed_[order[i].second];
    if (twice) {
        fail_at(twice->line, "peer " + twice->peer.public_key.base64() + " listed twice");
        return false;
    }
    for (const auto& [key, i] : order) {
        live_.device.peers.emplace_hint(live_.device.peers.end(), key, std::move(listed_[i].peer));
        live_.stats.emplace_hint(live_.stats.end(), key, listed_[i].stats);
    }
    listed_.clear();
    return true;
}

namespace {

enum class Field {
    other,
    errno_,
    private_key,
    listen_port,
    fwmark,
    public_key,
    preshared_key,
    endpoint,
    allowed_ip,
    keepalive,
    last_handshake_sec,
    rx_bytes,
    tx_bytes
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
        flush_peer();
        if (!key_from_hex(value, peer_.public_key.bytes)) return fail("public_key is not 64 hex digits");
        in_peer_ = true;
        peer_line_ = line_no_;
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
            if (ok) {
                live_.private_key = model::SecretKey(raw);
                live_.device.public_key = live_.private_key->public_key();
            }
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
            peer_.allowed_ips.insert(*p);
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
    flush_peer();
    if (!build_peers()) return *error_;
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
    if (!done_) return errno_error(EPROTO, "set WireGuard device " + ifname_ + ": UAPI reply ended before its blank line");
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
                return errno_error(EINVAL, "set WireGuard device " + change.ifname + ": endpoint " + quote(e.str()) + " of peer " +
                                               p.public_key.base64() + " must be an IP literal with a port (resolve names first)");
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

}  // namespace wgf::linux_
