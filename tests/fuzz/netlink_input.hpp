// Fuzz input for the netlink decoders: a byte string of netlink messages one after another, as a
// recv() on a netlink socket returns them. Split the way libnl and libmnl split a datagram
// (NLMSG_OK / NLMSG_NEXT), each message copied to aligned memory, so the decoders see exactly
// what a socket reader hands them.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace wgf::fuzz {

class NetlinkMessages {
public:
    NetlinkMessages(const uint8_t* data, size_t size) : buf_((size + 3) / 4 + 1) {
        std::memcpy(buf_.data(), data, size);
        auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data());
        int len = static_cast<int>(size);
        for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) msgs_.push_back(nlh);
    }
    const std::vector<const nlmsghdr*>& all() const { return msgs_; }

private:
    std::vector<uint32_t> buf_;
    std::vector<const nlmsghdr*> msgs_;
};

}  // namespace wgf::fuzz
