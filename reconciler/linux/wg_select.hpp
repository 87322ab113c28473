// The WireGuard backend wg-fleet uses: per device, chosen at run time as `wg` does: a UAPI
// socket in /var/run/wireguard means a userspace implementation serves the device, otherwise
// the kernel (generic netlink) does. A socket that refuses connections (its process died) is
// removed when a device is read, set or deleted, and the kernel is asked instead, as `wg` does;
// the device's link went with its process, so `watch` sees the device missing and creates it
// again. Also owns the choice to start a userspace implementation (uapi_process.hpp) when the
// kernel cannot create a `wireguard` link, as wg-quick does, and the liveness checks `watch`
// uses to notice that such a process died.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/wg_uapi.hpp"

namespace wgf::linux_ {

// Connect to the socket: ECONNREFUSED or ENOENT mean the process is gone (or never ran).
// Any other outcome counts as alive, so nothing is started twice on a permission error.
bool userspace_alive(const std::string& ifname, const std::string& socket_dir = kUapiSocketDir);
// The pid of the process serving the socket (see uapi_server_pid).
std::optional<pid_t> userspace_pid(const std::string& ifname, const std::string& socket_dir = kUapiSocketDir);

// Errors from creating a `wireguard` link that mean "no kernel WireGuard here".
bool kernel_lacks_wireguard(int err);

class WgSelect : public backend::WireGuard {
public:
    enum class Transport { kernel, userspace };

    // kernel: the generic-netlink backend (WgGenl); null means no kernel backend, so every
    // device is userspace.
    explicit WgSelect(std::unique_ptr<backend::WireGuard> kernel, UapiOptions options = {});

    // Kernel devices and answering userspace sockets, sorted, each once.
    std::vector<std::string> list_devices() override;
    backend::Result<backend::WgDeviceLive> read_device(const std::string& ifname) override;
    backend::Status set_device(const backend::WgDeviceChange& change) override;
    // Kernel link first; when the kernel has no WireGuard, a userspace implementation.
    backend::Status create_device(const std::string& ifname) override;
    backend::Status delete_device(const std::string& ifname) override;

    // userspace while ifname's socket file exists (see userspace_alive for whether it answers;
    // a stale one is removed by the next read, set or delete).
    Transport transport_for(const std::string& ifname) const;
    bool userspace_alive(const std::string& ifname) const;
    std::optional<pid_t> userspace_pid(const std::string& ifname) const;

private:
    backend::WireGuard* pick(const std::string& ifname);

    std::unique_ptr<backend::WireGuard> kernel_;
    WgUapi uapi_;
};

}  // namespace wgf::linux_
