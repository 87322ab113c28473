// libFuzzer harness over the nftables rule and map element decoders: NFT_MSG_NEWRULE and
// NFT_MSG_NEWSETELEM messages (back to back, see netlink_input.hpp) through
// nft::parse_rule_message() and nft::parse_elem_message(), as Nft::read_table() reads each
// message of its dumps, then reported by nft::view(). An unknown or damaged rule or element must
// decode as unknown (and be reported as damage), never crash.
#include <cstddef>
#include <cstdint>

#include "linux/nft_codec.hpp"
#include "netlink_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wgf::linux_;
    wgf::fuzz::NetlinkMessages msgs(data, size);
    NftTableLive live;
    live.exists = true;
    for (const auto& map : nft::dnat_maps()) live.sets.push_back(NftSetLive{.name = map.name});
    for (const nlmsghdr* m : msgs.all()) {
        if (auto rl = nft::parse_rule_message(m, "wg-fleet")) live.rules.push_back(std::move(*rl));
        for (const auto& map : nft::dnat_maps())
            for (auto& e : nft::parse_elem_message(m, "wg-fleet", map.name)) live.elements.push_back(std::move(e));
    }
    (void)nft::view(live);
    return 0;
}
