// The UAPI socket transport: connecting to /var/run/wireguard/IF.sock and moving the text of one
// exchange (uapi_protocol.hpp) over it. One connection carries one exchange, as wg does.
#pragma once

#include <cstddef>
#include <string>

#include "backend/backend.hpp"
#include "linux/uapi_protocol.hpp"

namespace wgf::linux_ {

inline constexpr const char* kUapiSocketDir = "/var/run/wireguard";

std::string uapi_socket_path(const std::string& socket_dir, const std::string& ifname);

// Connects to ifname's socket. -errno on failure: -ENOENT (no socket), -ECONNREFUSED (stale
// socket: the process is gone), -EINVAL (not a valid interface name).
int uapi_connect(const std::string& socket_dir, const std::string& ifname);

// The error for a failed uapi_connect (err > 0): a missing or stale socket is ENODEV, naming it.
backend::Error uapi_connect_error(int err, const std::string& what, const std::string& path);

// Send and receive timeouts of one exchange; a timeout is reported as ETIMEDOUT.
void uapi_set_timeouts(int fd, int timeout_ms);

backend::Status uapi_send(int fd, const char* data, size_t size, const std::string& what);

// Reads the reply and feeds it to the parser line by line until it says done or error (or the
// daemon closes the connection: the parser's finish() then reports the truncated reply). The
// read buffer is wiped before it is freed: a get reply carries the private key.
backend::Status uapi_read_reply(int fd, uapi::GetReplyParser& parser, const std::string& what);
backend::Status uapi_read_reply(int fd, uapi::SetReplyParser& parser, const std::string& what);

// One exchange on a connected socket that carries no secret and changes nothing (an empty set):
// true when the daemon accepted it and answered.
bool uapi_ping_fd(int fd, const std::string& ifname);

// uapi_ping_fd on a new connection to ifname's socket, within timeout_ms.
bool uapi_ping(const std::string& socket_dir, const std::string& ifname, int timeout_ms);

}  // namespace wgf::linux_
