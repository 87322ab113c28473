// WireGuard over the userspace UAPI socket (/var/run/wireguard/IF.sock), the cross-platform
// configuration protocol that wireguard-go and other userspace implementations speak.
//
// Two layers: a pure text layer (uapi::GetReplyParser, uapi::format_set_request,
// uapi::parse_set_reply) that tests drive without a socket, and WgUapi, which moves that text
// over the socket. Invariants: a private key is never quoted in an error, is derived into the
// public key and wiped as soon as it is parsed, and every buffer that held it (the read buffer,
// a set request) is wiped before it is freed. A set request carries only the fields of the
// WgDeviceChange that are set, so one changed peer sends exactly that peer's lines.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.hpp"

namespace wgf::linux_ {

inline constexpr const char* kUapiSocketDir = "/var/run/wireguard";

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
    bool operator==(const WipingAllocator<U>&) const noexcept { return true; }
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
    Step fail(const std::string& why);
    bool flush_peer();

    std::string ifname_;
    backend::WgDeviceLive live_;
    std::optional<uint16_t> port_;
    bool in_peer_ = false;
    model::WgPeer peer_;
    backend::WgPeerStats stats_;
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

struct UapiOptions {
    std::string socket_dir = kUapiSocketDir;
    // The top-level YAML key `userspace:`; else WG_FLEET_USERSPACE_IMPLEMENTATION, else
    // WG_QUICK_USERSPACE_IMPLEMENTATION, else wireguard-go from PATH (see wg_select.hpp).
    std::optional<std::string> userspace_command;
    int io_timeout_ms = 30000;      // one get/set exchange; a 10,000-peer set takes ~0.1 s
    int start_timeout_ms = 10000;   // until a started implementation answers on its socket
    int stop_timeout_ms = 5000;     // until a deleted device's process has gone
};

class WgUapi : public backend::WireGuard {
public:
    explicit WgUapi(UapiOptions options = {});

    // Interfaces whose socket in socket_dir accepts a connection, sorted.
    std::vector<std::string> list_devices() override;
    backend::Result<backend::WgDeviceLive> read_device(const std::string& ifname) override;
    backend::Status set_device(const backend::WgDeviceChange& change) override;
    // Starts the userspace implementation for ifname and waits until it answers.
    backend::Status create_device(const std::string& ifname) override;
    // Deletes the link (the implementation exits when its tun goes away), then waits until the
    // socket stops answering; signals the process as a last resort.
    backend::Status delete_device(const std::string& ifname) override;

    const UapiOptions& options() const { return options_; }
    std::string socket_path(const std::string& ifname) const;
    // The socket exists and accepts a connection.
    bool has_device(const std::string& ifname) const;
    // The socket file exists, answering or not: a userspace implementation serves (or served,
    // and died leaving its socket) ifname.
    bool has_socket(const std::string& ifname) const;

private:
    UapiOptions options_;
};

// Connects to ifname's socket. -errno on failure: -ENOENT (no socket), -ECONNREFUSED (stale
// socket: the process is gone), -EINVAL (not a valid interface name).
int uapi_connect(const std::string& socket_dir, const std::string& ifname);

// One exchange that carries no secret and changes nothing (an empty set): true when the process
// behind ifname's socket accepted and answered within timeout_ms.
bool uapi_ping(const std::string& socket_dir, const std::string& ifname, int timeout_ms);

// The process serving ifname's socket, found by the peer of a connection to it. SO_PEERCRED
// alone is not enough: wireguard-go creates the listening socket and then re-executes itself as
// a daemon, so SO_PEERCRED names the parent that already exited. Asks sock_diag for the peer
// socket's inode and finds the process holding it, checking SO_PEERCRED's pid first.
std::optional<pid_t> uapi_server_pid(const std::string& socket_dir, const std::string& ifname);

}  // namespace wgf::linux_
