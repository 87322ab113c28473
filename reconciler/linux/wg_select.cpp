// Per-device choice between the kernel and a userspace implementation.
#include "linux/wg_select.hpp"

#include <unistd.h>

#include <cerrno>
#include <set>

#include "model/fd.hpp"

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;

bool kernel_lacks_wireguard(int err) {
    // RTM_NEWLINK kind wireguard without the module: EOPNOTSUPP ("Unknown device type"); the
    // others come from kernels or backends that fail earlier (no genl family, no netlink).
    return err == EOPNOTSUPP || err == ENODEV || err == EAFNOSUPPORT || err == EPROTONOSUPPORT || err == ENOSYS || err == ENOENT;
}

bool userspace_alive(const std::string& ifname, const std::string& socket_dir) {
    model::Fd fd(uapi_connect(socket_dir, ifname));
    return fd.fd >= 0 || (fd.fd != -ECONNREFUSED && fd.fd != -ENOENT);
}

std::optional<pid_t> userspace_pid(const std::string& ifname, const std::string& socket_dir) { return uapi_server_pid(socket_dir, ifname); }

WgSelect::WgSelect(std::unique_ptr<backend::WireGuard> kernel, UapiOptions options)
    : kernel_(std::move(kernel)), uapi_(std::move(options)) {}

WgSelect::Transport WgSelect::transport_for(const std::string& ifname) const {
    return uapi_.has_socket(ifname) ? Transport::userspace : Transport::kernel;
}

backend::WireGuard* WgSelect::pick(const std::string& ifname) {
    if (transport_for(ifname) == Transport::userspace) {
        // As `wg` does: a socket that refuses connections was left by a process that is gone.
        // Remove it and ask the kernel, which may serve a device of that name. Any other
        // failure to connect is the userspace path's to report. (As with `wg`, a daemon that
        // replaces the socket between the refused connect and the unlink would lose it; only
        // wg-fleet starts daemons for its devices, and one run at a time.)
        model::Fd fd(uapi_connect(uapi_.options().socket_dir, ifname));
        if (fd.fd != -ECONNREFUSED) return &uapi_;
        unlink(uapi_.socket_path(ifname).c_str());
    }
    return kernel_.get();
}

std::vector<std::string> WgSelect::list_devices() {
    std::set<std::string> all;
    if (kernel_)
        for (auto& n : kernel_->list_devices()) all.insert(std::move(n));
    for (auto& n : uapi_.list_devices()) all.insert(std::move(n));
    return {all.begin(), all.end()};
}

Result<backend::WgDeviceLive> WgSelect::read_device(const std::string& ifname) {
    if (auto* b = pick(ifname)) return b->read_device(ifname);
    return errno_error(ENODEV,
                       "read WireGuard device " + ifname + " (no UAPI socket " + uapi_.socket_path(ifname) + " and no kernel WireGuard)");
}

Status WgSelect::set_device(const backend::WgDeviceChange& change) {
    if (auto* b = pick(change.ifname)) return b->set_device(change);
    return errno_error(ENODEV, "set WireGuard device " + change.ifname + " (no UAPI socket " + uapi_.socket_path(change.ifname) +
                                   " and no kernel WireGuard)");
}

Status WgSelect::create_device(const std::string& ifname) {
    if (uapi_.has_device(ifname))
        return errno_error(EEXIST, "create WireGuard device " + ifname + ": " + uapi_.socket_path(ifname) + " already answers");
    // A socket left by a process that died would route the new device to UAPI, kernel or not.
    if (uapi_.has_socket(ifname)) unlink(uapi_.socket_path(ifname).c_str());
    std::string kernel_why = "no kernel WireGuard backend";
    if (kernel_) {
        auto s = kernel_->create_device(ifname);
        if (s || !kernel_lacks_wireguard(s.error().code)) return s;
        kernel_why = s.error().message;
    }
    auto s = uapi_.create_device(ifname);
    if (!s) return Error{s.error().code, s.error().message + " (after the kernel could not: " + kernel_why + ")"};
    return s;
}

Status WgSelect::delete_device(const std::string& ifname) {
    if (auto* b = pick(ifname)) return b->delete_device(ifname);
    return errno_error(ENODEV,
                       "delete WireGuard device " + ifname + " (no UAPI socket " + uapi_.socket_path(ifname) + " and no kernel WireGuard)");
}

bool WgSelect::userspace_alive(const std::string& ifname) const { return linux_::userspace_alive(ifname, uapi_.options().socket_dir); }

std::optional<pid_t> WgSelect::userspace_pid(const std::string& ifname) const {
    return linux_::userspace_pid(ifname, uapi_.options().socket_dir);
}

}  // namespace wgf::linux_
