// Value types for the network vocabulary: IP addresses, prefixes, endpoints, interface names,
// WireGuard keys and durations. Each parses strictly (returning why it failed) and formats
// canonically (RFC 5952 for IPv6), so the same text always means the same value.
#pragma once

#include <array>
#include <bit>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace wgf::model {

struct IpAddr {
    uint8_t family = 0;               // 4 or 6; 0 = unset
    std::array<uint8_t, 16> bytes{};  // IPv4 uses bytes[0..3]

    auto operator<=>(const IpAddr&) const = default;

    static std::optional<IpAddr> parse(std::string_view text);
    static IpAddr v6(const std::array<uint8_t, 16>& b) { return IpAddr{6, b}; }
    static IpAddr v4(uint32_t host_order);
    bool is_v4() const { return family == 4; }
    bool is_v6() const { return family == 6; }
    unsigned bits() const { return family == 4 ? 32 : 128; }
    uint32_t v4_value() const;  // host order; IPv4 only
    std::string str() const;
};

struct Prefix {
    IpAddr addr;
    uint8_t len = 0;

    auto operator<=>(const Prefix&) const = default;

    // Accepts "ADDR/LEN"; host bits may be set (an interface address); use masked() for the network.
    static std::optional<Prefix> parse(std::string_view text, std::string* why = nullptr);
    static Prefix host(const IpAddr& a) { return Prefix{a, static_cast<uint8_t>(a.bits())}; }
    Prefix masked() const;
    bool is_network() const { return masked() == *this; }
    bool contains(const IpAddr& a) const;
    bool overlaps(const Prefix& other) const;
    std::string str() const;
};

// host is a DNS name or an IP literal (stored without brackets); port 0 = not given.
struct Endpoint {
    std::string host;
    uint16_t port = 0;

    auto operator<=>(const Endpoint&) const = default;

    static std::optional<Endpoint> parse(std::string_view text, std::string* why = nullptr);
    Endpoint with_default_port(uint16_t p) const { return Endpoint{host, port ? port : p}; }
    std::string str() const;
};

struct Key {
    std::array<uint8_t, 32> bytes{};

    // The order of the bytes (memcmp's), eight at a time and inline: keys index every peer map,
    // and a library call per comparison dominated lookups in maps of 10,000 peers.
    friend std::strong_ordering operator<=>(const Key& a, const Key& b) noexcept {
        for (size_t i = 0; i < a.bytes.size(); i += 8) {
            uint64_t x = a.word(i), y = b.word(i);
            if (x != y) return x <=> y;
        }
        return std::strong_ordering::equal;
    }
    friend bool operator==(const Key& a, const Key& b) noexcept {
        uint64_t diff = 0;
        for (size_t i = 0; i < a.bytes.size(); i += 8) diff |= a.word(i) ^ b.word(i);
        return diff == 0;
    }

    static std::optional<Key> from_base64(std::string_view text, std::string* why = nullptr);
    std::string base64() const;
    std::string short_str() const { return base64().substr(0, 8) + "…"; }

private:
    // Bytes i..i+7 as a number that orders as they do.
    uint64_t word(size_t i) const noexcept {
        uint64_t v;
        std::memcpy(&v, bytes.data() + i, sizeof v);
        if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
        return v;
    }
};

// A private key: never formatted, wiped from memory when destroyed.
class SecretKey {
public:
    SecretKey() = default;
    explicit SecretKey(const std::array<uint8_t, 32>& b) : bytes_(b) {}
    SecretKey(const SecretKey&) = default;
    SecretKey& operator=(const SecretKey&) = default;
    ~SecretKey();

    static SecretKey generate();
    static std::optional<SecretKey> from_base64(std::string_view text);
    // The content of a private key file: the base64 key, then any trailing newlines, CRs or spaces.
    static std::optional<SecretKey> from_key_file(std::string_view content);
    Key public_key() const;
    // The only way to get the key's text out: for writing the 0600 key file or the kernel.
    std::string base64_for_storage() const;
    const std::array<uint8_t, 32>& raw() const { return bytes_; }
    bool operator==(const SecretKey& o) const;

private:
    std::array<uint8_t, 32> bytes_{};
};

bool valid_ifname(std::string_view name, std::string* why = nullptr);
bool valid_node_name(std::string_view name);
bool valid_dns_name(std::string_view name);

// Go-style durations as seed 002 used them: "30m", "1h", "2h30m", also "d" and "s" units.
std::optional<uint64_t> parse_duration(std::string_view text);
std::string format_duration(uint64_t seconds);

}  // namespace wgf::model

template <>
struct fmt::formatter<wgf::model::IpAddr> : fmt::formatter<std::string_view> {
    auto format(const wgf::model::IpAddr& a, format_context& ctx) const { return fmt::formatter<std::string_view>::format(a.str(), ctx); }
};
template <>
struct fmt::formatter<wgf::model::Prefix> : fmt::formatter<std::string_view> {
    auto format(const wgf::model::Prefix& p, format_context& ctx) const { return fmt::formatter<std::string_view>::format(p.str(), ctx); }
};
template <>
struct fmt::formatter<wgf::model::Endpoint> : fmt::formatter<std::string_view> {
    auto format(const wgf::model::Endpoint& e, format_context& ctx) const { return fmt::formatter<std::string_view>::format(e.str(), ctx); }
};
template <>
struct fmt::formatter<wgf::model::Key> : fmt::formatter<std::string_view> {
    auto format(const wgf::model::Key& k, format_context& ctx) const { return fmt::formatter<std::string_view>::format(k.base64(), ctx); }
};
template <>
struct fmt::formatter<wgf::model::SecretKey> : fmt::formatter<std::string_view> {
    auto format(const wgf::model::SecretKey&, format_context& ctx) const {
        return fmt::formatter<std::string_view>::format("(hidden)", ctx);
    }
};
