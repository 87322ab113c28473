// libFuzzer harness over the nftables rule decoder: NFT_MSG_NEWRULE messages (back to back, see
// netlink_input.hpp) parsed by libnftnl and decoded into FwRules exactly as Nft::read_table()
// does, then reported by nft::view(). An unknown or damaged rule must decode as unknown (and be
// reported as damage), never crash.
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libnftnl/rule.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "linux/nft.hpp"
#include "netlink_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wgf::linux_;
    wgf::fuzz::NetlinkMessages msgs(data, size);
    NftTableLive live;
    live.exists = true;
    for (const nlmsghdr* m : msgs.all()) {
        if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWRULE) continue;
        nft::RulePtr r(nftnl_rule_alloc());
        if (!r || nftnl_rule_nlmsg_parse(m, r.get()) != 0) continue;
        NftRuleLive rl;
        rl.handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
        const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
        rl.chain = chain ? chain : "";
        rl.comment = nft::rule_comment(r.get());
        rl.decoded = nft::decode_rule(r.get());
        live.rules.push_back(std::move(rl));
    }
    (void)nft::view(live);
    return 0;
}
