// libFuzzer harness over the WireGuard generic netlink dump reader: the replies of one
// WG_CMD_GET_DEVICE dump (netlink messages back to back, see netlink_input.hpp) into a
// WgDeviceLive. A malformed reply must be EBADMSG, never a crash or a read past a message.
#include <cstddef>
#include <cstdint>

#include "linux/wg_genl_msg.hpp"
#include "netlink_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    wgf::fuzz::NetlinkMessages msgs(data, size);
    (void)wgf::linux_::parse_get_device(msgs.all());
    return 0;
}
