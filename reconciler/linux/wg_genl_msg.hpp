// The messages of the kernel's generic netlink family "wireguard", without any socket:
//   - building WG_CMD_SET_DEVICE messages for a WgDeviceChange, chunked to a message size limit;
//   - reading the replies of a WG_CMD_GET_DEVICE dump into a WgDeviceLive, coalescing a peer
//     whose allowed IPs the kernel continued in the next message.
// The socket that carries them is WgGenl (wg_genl.hpp).
// Invariants: device-level attributes and WGDEVICE_F_REPLACE_PEERS appear only in the first SET
// message; WGPEER_F_REPLACE_ALLOWEDIPS only in a peer's first chunk (the kernel adds the allowed
// IPs of a continued peer); every message buffer that may hold a private key is wiped before it
// is freed (NlPtr<nl_msg> does). libnl headers stay out of this header, hence the forward
// declarations.
#pragma once

#include <linux/netlink.h>
#include <linux/wireguard.h>  // the kernel's uapi: WG_GENL_NAME, WG_CMD_*, WGDEVICE_A_*, WGPEER_*, WGALLOWEDIP_A_*

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/nl_ptr.hpp"

struct nla_policy;

namespace wgf::linux_ {

using NlMsgPtr = NlPtr<nl_msg>;

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
backend::Result<std::vector<NlMsgPtr>> build_set_device(const backend::WgDeviceChange& change, int family_id,
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

}  // namespace wgf::linux_
