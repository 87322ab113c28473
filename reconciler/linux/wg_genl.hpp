// WireGuard over the kernel's generic netlink family "wireguard", and the `wireguard` links over
// rtnetlink: WgGenl sends the messages of wg_genl_msg.hpp on its own sockets. Replies are
// received into a buffer of our own rather than through libnl's receive path, so that the buffer
// that held the device's private key is wiped after every read and the kernel's errno reaches
// the caller unchanged (libnl folds several errnos into one code).
#pragma once

#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/nl_ptr.hpp"
#include "linux/wg_genl_msg.hpp"

namespace wgf::linux_ {

// The kernel backend. Sockets open on first use and stay bound to the network namespace the
// calling thread was in at that moment. Not thread-safe: one WgGenl per thread.
class WgGenl final : public backend::WireGuard {
public:
    WgGenl();
    ~WgGenl() override;
    WgGenl(const WgGenl&) = delete;
    WgGenl& operator=(const WgGenl&) = delete;

    // Links of kind "wireguard", by name. Empty when the links cannot be read.
    std::vector<std::string> list_devices() override;
    // ENODEV when there is no such link, it is not a kernel WireGuard link, or the kernel has no
    // WireGuard family. Retries the whole dump when the kernel reports it was interrupted.
    backend::Result<backend::WgDeviceLive> read_device(const std::string& ifname) override;
    // Sends the chunked messages one at a time, each acknowledged before the next.
    backend::Status set_device(const backend::WgDeviceChange& change) override;
    // EOPNOTSUPP when the kernel cannot create `wireguard` links (no module): the caller then
    // falls back to a userspace implementation.
    backend::Status create_device(const std::string& ifname) override;
    // Refuses (ENODEV) a link that is not of kind "wireguard".
    backend::Status delete_device(const std::string& ifname) override;

private:
    backend::Status open_genl();
    backend::Status open_rtnl();
    // The family id, resolved on each call until it is found: the module may be loaded later
    // (creating the first wireguard link loads it).
    backend::Result<int> family_id();

    NlPtr<nl_sock> genl_;
    NlPtr<nl_sock> rtnl_;
    int family_ = -1;
};

}  // namespace wgf::linux_
