// libFuzzer harness over the nftables rule decoder: NFT_MSG_NEWRULE messages (back to back, see
// netlink_input.hpp) through nft::parse_rule_message(), as Nft::read_table() reads each message
// of its dump, then reported by nft::view(). An unknown or damaged rule must decode as unknown (and be
// reported as damage), never crash.
#include <cstddef>
#include <cstdint>

#include "linux/nft_codec.hpp"
#include "netlink_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wgf::linux_;
    wgf::fuzz::NetlinkMessages msgs(data, size);
    NftTableLive live;
    live.exists = true;
    for (const nlmsghdr* m : msgs.all())
        if (auto rl = nft::parse_rule_message(m, "wg-fleet")) live.rules.push_back(std::move(*rl));
    (void)nft::view(live);
    return 0;
}
