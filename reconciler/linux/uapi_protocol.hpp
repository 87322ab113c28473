// The UAPI text protocol (the cross-platform configuration protocol that wireguard-go and other
// userspace implementations speak), without any I/O: uapi::GetReplyParser, uapi::format_set_request
// and uapi::parse_set_reply are driven by the socket transport (uapi_socket.hpp), by tests and by
// the fuzzer alike.
//
// Invariants: a private key is never quoted in an error, is derived into the public key and wiped
// as soon as it is parsed, and every buffer that held it (a set request) is wiped before it is
// freed. A set request carries only the fields of the WgDeviceChange that are set, so one changed
// peer sends exactly that peer's lines.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.hpp"

namespace wgf::linux_ {

void wipe_memory(void* p, size_t n) noexcept;

// Wipes every buffer it frees, so a string that held a private key leaves no copy behind, also
// when it grew and reallocated.
template <class T>
struct WipingAllocator {
    using value_type = T;
    WipingAllocator() noexcept = default;
    template <class U>
    WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: rebinding
    T* allocate(size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, size_t n) noexcept {
        wipe_memory(p, n * sizeof(T));
        std::allocator<T>{}.deallocate(p, n);
    }
    template <class U>
    bool operator==(const WipingAllocator<U>&) const noexcept {
        return true;
    }
};
using WipedString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

namespace uapi {

enum class Step { more, done, error };

// Turns the reply to `get=1` into a WgDeviceLive, one line at a time, so a reader can feed it
// straight from its buffer without copying lines. Normalizes as every read_* does: allowed IPs
// masked, sorted, unique; endpoint host canonical without brackets; listen_port always set;
// public_key derived from the private key (absent when the device has none).
class GetReplyParser {
public:
    explicit GetReplyParser(std::string ifname);
    // One line without its '\n'. `done` after the blank line that ends the reply.
    Step line(std::string_view text);
    // The device, or why the reply was malformed (EPROTO) or the daemon's errno=N.
    backend::Result<backend::WgDeviceLive> finish();

private:
    // A peer as listed, and the line of its public_key.
    struct Listed {
        model::WgPeer peer;
        backend::WgPeerStats stats;
        size_t line = 0;
    };
    Step fail(const std::string& why) { return fail_at(line_no_, why); }
    Step fail_at(size_t line, const std::string& why);
    void flush_peer();
    bool build_peers();

    std::string ifname_;
    backend::WgDeviceLive live_;
    std::optional<uint16_t> port_;
    bool in_peer_ = false;
    model::WgPeer peer_;
    backend::WgPeerStats stats_;
    size_t peer_line_ = 0;
    std::vector<Listed> listed_;  // in the daemon's order (none: wireguard-go's is a hash map's)
    std::optional<long long> errno_;
    bool done_ = false;
    size_t line_no_ = 0;
    std::optional<backend::Error> error_;
};

// Parses a complete reply (for tests and small inputs).
backend::Result<backend::WgDeviceLive> parse_get_reply(std::string_view text, const std::string& ifname);

// The reply to `set=1`: "errno=N" and a blank line. wireguard-go sends N negated (errno=-22);
// both signs are accepted.
class SetReplyParser {
public:
    explicit SetReplyParser(std::string ifname) : ifname_(std::move(ifname)) {}
    Step line(std::string_view text);
    backend::Status finish() const;

private:
    std::string ifname_;
    std::optional<long long> errno_;
    bool done_ = false;
    std::optional<backend::Error> error_;
};

backend::Status parse_set_reply(std::string_view text, const std::string& ifname);

// The full `set=1` request for a change, ending in the blank line. Fails (EINVAL) for values the
// protocol cannot carry: an endpoint that is not an IP literal with a port.
backend::Result<WipedString> format_set_request(const backend::WgDeviceChange& change);

}  // namespace uapi

}  // namespace wgf::linux_
