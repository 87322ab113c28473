#include "model/net.hpp"

#include <arpa/inet.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace wgf::model {
namespace {

void ensure_sodium() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    });
}

// Strict decimal: digits only, no sign, no leading zeros beyond "0", bounded.
std::optional<uint64_t> parse_decimal(std::string_view s, uint64_t max) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    if (s.size() > 1 && s[0] == '0') return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

void set_why(std::string* why, std::string text) {
    if (why) *why = std::move(text);
}

}  // namespace

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
    // inet_pton stops at a NUL: "1.2.3.4\0junk" must not pass as 1.2.3.4.
    if (text.empty() || text.size() > INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) return std::nullopt;
    std::string s(text);
    IpAddr a;
    if (s.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
        a.family = 6;
    } else {
        if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
        a.family = 4;
    }
    return a;
}

IpAddr IpAddr::v4(uint32_t host_order) {
    IpAddr a;
    a.family = 4;
    a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
    a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
    a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
    a.bytes[3] = static_cast<uint8_t>(host_order);
    return a;
}

uint32_t IpAddr::v4_value() const { return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | bytes[3]; }

std::string IpAddr::str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family == 4) {
        inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
        return buf;
    }
    if (family != 6) return "(unset)";
    // RFC 5952, written out: glibc's inet_ntop prints "::0.1.0.2" for any address whose first 96
    // bits are zero. Only IPv4-mapped addresses (::ffff:a.b.c.d) keep the dotted quad.
    uint16_t g[8];
    for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>((bytes[2 * i] << 8) | bytes[2 * i + 1]);
    if (g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 0xffff) {
        inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
        return std::string("::ffff:") + buf;
    }
    int best = -1, best_len = 1;  // a lone zero group is never compressed
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0) ++j;
        if (j - i > best_len) best = i, best_len = j - i;
        i = j;
    }
    char out[48];  // 8 groups of 4 hex digits and 7 colons at most
    char* end = out;
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            *end++ = ':';
            *end++ = ':';
            i += best_len - 1;
            continue;
        }
        if (end != out && end[-1] != ':') *end++ = ':';
        end = std::to_chars(end, out + sizeof out, g[i], 16).ptr;
    }
    return std::string(out, end);
}

std::optional<Prefix> Prefix::parse(std::string_view text, std::string* why) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        set_why(why, "expected ADDRESS/LENGTH");
        return std::nullopt;
    }
    auto addr = IpAddr::parse(text.substr(0, slash));
    if (!addr) {
        set_why(why, "not an IPv4 or IPv6 address before '/'");
        return std::nullopt;
    }
    auto len = parse_decimal(text.substr(slash + 1), addr->bits());
    if (!len) {
        set_why(why, addr->is_v4() ? "prefix length must be 0..32" : "prefix length must be 0..128");
        return std::nullopt;
    }
    return Prefix{*addr, static_cast<uint8_t>(*len)};
}

Prefix Prefix::masked() const {
    Prefix p = *this;
    unsigned nbytes = addr.bits() / 8;
    for (unsigned i = 0; i < nbytes; ++i) {
        unsigned first_bit = i * 8;
        if (first_bit >= len) p.addr.bytes[i] = 0;
        else if (first_bit + 8 > len) p.addr.bytes[i] &= static_cast<uint8_t>(0xff << (8 - (len - first_bit)));
    }
    return p;
}

bool Prefix::contains(const IpAddr& a) const {
    if (a.family != addr.family) return false;
    // What comparing both masked() addresses would say, without the copies (renders test every
    // allowed IP of every peer): the whole bytes under the length, the bits of a partial byte,
    // and the bytes past the family's, which masked() leaves as they are.
    const unsigned nbytes = addr.bits() / 8, full = std::min<unsigned>(len / 8, nbytes);
    if (std::memcmp(a.bytes.data(), addr.bytes.data(), full) != 0) return false;
    if (full < nbytes && len % 8) {
        const auto mask = static_cast<uint8_t>(0xff << (8 - len % 8));
        if ((a.bytes[full] ^ addr.bytes[full]) & mask) return false;
    }
    return std::memcmp(a.bytes.data() + nbytes, addr.bytes.data() + nbytes, a.bytes.size() - nbytes) == 0;
}

bool Prefix::overlaps(const Prefix& o) const {
    if (o.addr.family != addr.family) return false;
    uint8_t l = std::min(len, o.len);
    return Prefix{addr, l}.masked().addr == Prefix{o.addr, l}.masked().addr;
}

std::string Prefix::str() const { return addr.str() + "/" + std::to_string(len); }

std::optional<Endpoint> Endpoint::parse(std::string_view text, std::string* why) {
    Endpoint e;
    std::string_view host = text, port;
    bool has_port = false;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) {
            set_why(why, "missing ']' after the IPv6 address");
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') {
                set_why(why, "expected ':PORT' after ']'");
                return std::nullopt;
            }
            port = rest.substr(1);
            has_port = true;
        }
        auto a = IpAddr::parse(host);
        if (!a || !a->is_v6()) {
            set_why(why, "not an IPv6 address inside [ ]");
            return std::nullopt;
        }
    } else if (std::count(text.begin(), text.end(), ':') > 1) {
        // A bare IPv6 address: no port can be given without brackets.
        auto a = IpAddr::parse(text);
        if (!a) {
            set_why(why, "not an IPv6 address (write [ADDRESS]:PORT to give a port)");
            return std::nullopt;
        }
    } else {
        auto colon = text.rfind(':');
        if (colon != std::string_view::npos) {
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
            has_port = true;
        }
        if (!IpAddr::parse(host) && !valid_dns_name(host)) {
            set_why(why, "host must be an IP address or a DNS name");
            return std::nullopt;
        }
    }
    if (has_port) {
        auto p = parse_decimal(port, 65535);
        if (!p || *p == 0) {
            set_why(why, "port must be 1..65535");
            return std::nullopt;
        }
        e.port = static_cast<uint16_t>(*p);
    }
    // IP literals in canonical text, so "[FD00:0::1]" and the kernel's "fd00::1" compare equal.
    auto literal = IpAddr::parse(host);
    e.host = literal ? literal->str() : std::string(host);
    return e;
}

std::string Endpoint::str() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return port ? h + ":" + std::to_string(port) : h;
}

namespace {

constexpr const char* kKeyBase64Why = "a key is 32 bytes in base64: 44 characters ending in '='";

// The value of each base64 character (the original alphabet), -1 for any other byte.
constexpr std::array<int8_t, 256> kBase64Value = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int8_t v = 0; v < 64; ++v) t[static_cast<uint8_t>(alphabet[v])] = v;
    return t;
}();

// 32 bytes from 43 base64 characters and '=', canonical only (the 2 bits the last character
// carries beyond the 256 must be 0), as sodium_base642bin decodes them; by table, which is
// not constant-time: for public keys only (SecretKey decodes with libsodium).
bool public_key_from_base64(std::string_view text, std::array<uint8_t, 32>& out) {
    if (text.size() != 44 || text[43] != '=') return false;
    int bad = 0;
    auto value = [&](size_t i) {
        // NOLINTNEXTLINE(bugprone-signed-char-misuse): the table is int8_t on purpose, -1 marks a byte outside the alphabet
        int v = kBase64Value[static_cast<uint8_t>(text[i])];
        bad |= v;
        return static_cast<uint32_t>(v & 63);
    };
    size_t o = 0;
    for (size_t i = 0; i < 40; i += 4) {
        uint32_t w = value(i) << 18 | value(i + 1) << 12 | value(i + 2) << 6 | value(i + 3);
        out[o++] = static_cast<uint8_t>(w >> 16);
        out[o++] = static_cast<uint8_t>(w >> 8);
        out[o++] = static_cast<uint8_t>(w);
    }
    uint32_t w = value(40) << 12 | value(41) << 6 | value(42);
    out[30] = static_cast<uint8_t>(w >> 10);
    out[31] = static_cast<uint8_t>(w >> 2);
    return bad >= 0 && (w & 3) == 0;
}

}  // namespace

std::optional<Key> Key::from_base64(std::string_view text, std::string* why) {
    Key k;
    if (!public_key_from_base64(text, k.bytes)) {
        set_why(why, kKeyBase64Why);
        return std::nullopt;
    }
    return k;
}

std::string Key::base64() const {
    ensure_sodium();
    char buf[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(buf, sizeof buf, bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
    return buf;
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey SecretKey::generate() {
    ensure_sodium();
    std::array<uint8_t, 32> b;
    randombytes_buf(b.data(), b.size());
    // Clamp as `wg genkey` does, so the stored key is the canonical Curve25519 scalar.
    b[0] &= 248;
    b[31] = static_cast<uint8_t>((b[31] & 127) | 64);
    SecretKey k(b);
    sodium_memzero(b.data(), b.size());
    return k;
}

std::optional<SecretKey> SecretKey::from_base64(std::string_view text) {
    // libsodium's decoder: its time does not depend on the key. It decodes a byte above 0x7f as
    // if it were a base64 digit; base64 has none.
    ensure_sodium();
    std::array<uint8_t, 32> b{};
    size_t len = 0;
    const char* end = nullptr;
    unsigned high = 0;
    for (char c : text) high |= static_cast<unsigned char>(c) & 0x80u;
    bool ok = text.size() == 44 && text[43] == '=' && high == 0 &&
              sodium_base642bin(b.data(), b.size(), text.data(), text.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) == 0 &&
              len == 32 && end == text.data() + text.size();
    std::optional<SecretKey> s;
    if (ok) s.emplace(b);
    sodium_memzero(b.data(), b.size());
    return s;
}

std::optional<SecretKey> SecretKey::from_key_file(std::string_view content) {
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r' || content.back() == ' ')) content.remove_suffix(1);
    return from_base64(content);
}

Key SecretKey::public_key() const {
    ensure_sodium();
    Key k;
    crypto_scalarmult_curve25519_base(k.bytes.data(), bytes_.data());
    return k;
}

std::string SecretKey::base64_for_storage() const {
    ensure_sodium();
    char buf[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(buf, sizeof buf, bytes_.data(), bytes_.size(), sodium_base64_VARIANT_ORIGINAL);
    std::string out(buf);
    sodium_memzero(buf, sizeof buf);
    return out;
}

bool SecretKey::operator==(const SecretKey& o) const { return sodium_memcmp(bytes_.data(), o.bytes_.data(), bytes_.size()) == 0; }

bool valid_ifname(std::string_view name, std::string* why) {
    // The kernel's dev_valid_name(): shorter than IFNAMSIZ (16), not "." or "..", no '/', ':' or space.
    if (name.empty()) {
        set_why(why, "an interface name cannot be empty");
        return false;
    }
    if (name.size() > 15) {
        set_why(why, "an interface name has at most 15 characters");
        return false;
    }
    if (name == "." || name == "..") {
        set_why(why, "an interface name cannot be '.' or '..'");
        return false;
    }
    for (unsigned char c : name) {
        if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f) {
            set_why(why, "an interface name cannot contain '/', ':', white space or non-ASCII characters");
            return false;
        }
    }
    return true;
}

bool valid_node_name(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    auto alnum = [](unsigned char c) { return std::isalnum(c) != 0; };
    if (!alnum(name[0])) return false;
    for (unsigned char c : name)
        if (!alnum(c) && c != '-' && c != '_') return false;
    return true;
}

bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    size_t start = 0;
    while (start <= name.size()) {
        auto dot = name.find('.', start);
        auto label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (unsigned char c : label)
            if (!std::isalnum(c) && c != '-' && c != '_') return false;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return true;
}

std::optional<uint64_t> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    uint64_t total = 0;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = i;
        while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
        if (j == i || j == text.size()) return std::nullopt;
        if (j - i > 9) return std::nullopt;  // keeps the sum far from overflow
        uint64_t n = 0;
        std::from_chars(text.data() + i, text.data() + j, n);
        uint64_t unit = 0;
        switch (text[j]) {
            case 'd': unit = 86400; break;
            case 'h': unit = 3600; break;
            case 'm': unit = 60; break;
            case 's': unit = 1; break;
            default: return std::nullopt;
        }
        total += n * unit;
        i = j + 1;
    }
    return total;
}

std::string format_duration(uint64_t s) {
    if (s == 0) return "0s";
    std::string out;
    const std::pair<uint64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (auto [u, c] : units) {
        if (s >= u) {
            out += std::to_string(s / u) + c;
            s %= u;
        }
    }
    return out;
}

}  // namespace wgf::model
