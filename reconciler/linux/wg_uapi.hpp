// WireGuard over the userspace UAPI socket (/var/run/wireguard/IF.sock): the backend::WireGuard
// of a userspace implementation. Three parts, each in its own file: the text protocol
// (uapi_protocol.hpp, pure), the socket transport (uapi_socket.hpp) and the userspace process
// (uapi_process.hpp: starting it, finding it, stopping it). WgUapi ties them together.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/uapi_process.hpp"
#include "linux/uapi_protocol.hpp"
#include "linux/uapi_socket.hpp"

namespace wgf::linux_ {

struct UapiOptions {
    std::string socket_dir = kUapiSocketDir;
    // The top-level YAML key `userspace:`; else WG_FLEET_USERSPACE_IMPLEMENTATION, else
    // WG_QUICK_USERSPACE_IMPLEMENTATION, else wireguard-go from PATH (see wg_select.hpp).
    std::optional<std::string> userspace_command;
    int io_timeout_ms = 30000;     // one get/set exchange; a 10,000-peer set takes ~0.1 s
    int start_timeout_ms = 10000;  // until a started implementation answers on its socket
    int stop_timeout_ms = 5000;    // until a deleted device's process has gone
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

}  // namespace wgf::linux_
