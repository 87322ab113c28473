// WireGuard over the kernel's generic netlink family "wireguard", and the `wireguard` links over
// rtnetlink. Owns three things, kept apart so the first two build and test without root:
//   - building WG_CMD_SET_DEVICE messages for a WgDeviceChange, chunked to a message size limit;
//   - reading the replies of a WG_CMD_GET_DEVICE dump into a WgDeviceLive, coalescing a peer
//     whose allowed IPs the kernel continued in the next message;
//   - WgGenl, which sends them on its own sockets.
// Invariants: device-level attributes and WGDEVICE_F_REPLACE_PEERS appear only in the first SET
// message; WGPEER_F_REPLACE_ALLOWEDIPS only in a peer's first chunk (the kernel adds the allowed
// IPs of a continued peer); every message buffer that may hold a private key is wiped before it
// is freed. libnl headers stay out of this header (only wgf_linux sees them), hence the forward
// declarations.
#pragma once

#include <linux/netlink.h>
#include <linux/wireguard.h>  // the kernel's uapi: WG_GENL_NAME, WG_CMD_*, WGDEVICE_A_*, WGPEER_*, WGALLOWEDIP_A_*

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"

struct nl_msg;
struct nl_sock;
struct nla_policy;

namespace wgf::linux_ {

// Wipes the whole message buffer (it may carry a private key), then frees it.
struct NlMsgFree {
    void operator()(nl_msg* msg) const;
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

struct NlSockFree {
    void operator()(nl_sock* sock) const;
};
using NlSockPtr = std::unique_ptr<nl_sock, NlSockFree>;

// The attribute policies of the WireGuard family, for libnl's nla_parse/genlmsg_parse: arrays of
// WGDEVICE_A_MAX + 1, WGPEER_A_MAX + 1 and WGALLOWEDIP_A_MAX + 1 entries. Keys and addresses are
// checked for their exact lengths.
const nla_policy* wg_device_policy();
const nla_policy* wg_peer_policy();
const nla_policy* wg_allowedip_policy();

// Upper bound of one SET message. The kernel takes larger ones, but a bound of two pages keeps
// each message (and the kernel's work under rtnl_lock) small; `wg` uses at most 8 KiB too.
inline constexpr std::size_t kWgSetMessageLimit = 8192;

// The WG_CMD_SET_DEVICE messages that apply `change`, in order, each at most `limit` bytes
// (nlmsg_len). Only what the change sets is carried: no private key, port or fwmark unless
// present, REPLACE_PEERS only when change.replace_peers. Fails (EINVAL) on an endpoint that is
// not an IP literal with a port or an allowed IP without a family, and (EMSGSIZE) when `limit`
// cannot hold a single allowed IP.
backend::Result<std::vector<NlMsgPtr>> build_set_device(const backend::WgDeviceChange& change,
                                                        int family_id,
                                                        std::size_t limit = kWgSetMessageLimit);

// The WG_CMD_GET_DEVICE dump request for one device.
NlMsgPtr build_get_device(const std::string& ifname, int family_id);

// Reads the replies of one GET_DEVICE dump, in order. A peer whose allowed IPs did not fit in one
// message is repeated, with its public key and the rest of its allowed IPs, in the next; the
// entries merge (fields present only in the first chunk are kept).
class WgDumpReader {
public:
    // EBADMSG when a reply is not a valid GET_DEVICE message.
    backend::Status add(const nlmsghdr* reply);
    // Allowed IPs masked, sorted ascending and unique; fwmark unset when 0; public key from the
    // device (derived from its private key when the kernel did not send it).
    backend::WgDeviceLive finish() const;

private:
    backend::WgDeviceLive live_;
    int replies_ = 0;
};

backend::Result<backend::WgDeviceLive> parse_get_device(const std::vector<const nlmsghdr*>& replies);

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

    NlSockPtr genl_;
    NlSockPtr rtnl_;
    int family_ = -1;
};

}  // namespace wgf::linux_
