// The nftables backend: wg-fleet's own table `inet wg-fleet`, changed through libnftnl + libmnl.
//
// Layout of the table (everything in it is ours; anything else found there is reported so the
// next apply removes it):
//   chain input       type filter hook input       priority 0     policy accept  (accept_udp)
//   chain forward     type filter hook forward     priority 0     policy accept  (forward)
//   chain prerouting  type nat    hook prerouting  priority -100  policy accept  (dnat)
//   chain postrouting type nat    hook postrouting priority 100   policy accept  (masquerade)
// plus `ct state established,related accept` at the head of forward, comment kEstablishedId,
// which belongs to the table's skeleton and is not reported by read().
//
// One rule per FwRule, its id in the rule's userdata as an nft comment (the TLV nft writes, so
// `nft list` prints `comment "id"`). read() decodes each rule's expressions back into a FwRule, so
// a rule edited by hand reads back different and the next apply replaces it.
//
// Forwards are one rule each, not elements of a map: an apply sends only the rules that differ
// (deletes by handle, appends), so the batch does not grow with the number of forwards, and each
// forward stays a readable rule with its own comment. apply() reuses the handles of the last
// read() when the ruleset generation is unchanged (the kernel enforces it with NFNL_BATCH_GENID),
// so read + apply dumps the table once. Measured in a namespace with 10,000 DNAT rules: read()
// ~200 ms (mostly the kernel's dump), one added rule after it ~5 ms CPU, 4-20 ms wall (the commit
// waits for RCU); `nft add rule` took 23-48 ms for the same change.
//
// Damage to the skeleton is reported as extra "?" ids, so a diff against read() is never empty
// while the table differs from what apply would build:
//   "?handle-N"      a rule with no usable comment, a duplicate id, a shape we do not build, or a
//                    rule in a chain that must be recreated
//   "?chain-NAME"    a base chain missing or different (type, hook, priority, policy), or a chain
//                    that is not ours
//   "?set-NAME"      a named set or map that is not ours
//   "?established"   the ct state rule is missing or changed
//   "?table-flags"   the table was made dormant
// apply() repairs all of these whatever ids the change removes; removing an id that is not there
// is a no-op, and adding an id that is there replaces it (or leaves it alone when it is equal).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "model/host_state.hpp"

struct nftnl_rule;
struct mnl_socket;
struct nlmsghdr;

namespace wgf::linux_ {

inline constexpr const char* kEstablishedId = "wg-fleet:established";

// The shape a rule's expressions decode to.
struct NftDecoded {
    enum class What { unknown, fw_rule, established };
    What what = What::unknown;
    model::FwRule rule;                      // fw_rule: every field but id
};

struct NftRuleLive {
    uint64_t handle = 0;
    std::string chain;
    std::optional<std::string> comment;      // present when the userdata holds a comment
    NftDecoded decoded;
};

struct NftChainLive {
    std::string name;
    bool base = false;
    std::string type;
    uint32_t hooknum = 0;
    int32_t priority = 0;
    uint32_t policy = 0;
};

// Everything read() looked at, kept so that apply() can find handles without dumping again.
struct NftTableLive {
    bool exists = false;
    uint32_t flags = 0;
    uint32_t genid = 0;                      // ruleset generation the dumps were taken at
    std::vector<NftChainLive> chains;
    std::vector<std::string> sets;           // named (non-anonymous) sets and maps
    std::vector<NftRuleLive> rules;          // in chain order
};

namespace nft {

struct RuleDeleter {
    void operator()(nftnl_rule* r) const;
};
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;

// The base chain a kind's rules live in.
const char* chain_for(model::FwKind kind);

// The rule with the fields its kind does not use cleared (proto is udp for kinds without one):
// what read() returns for it. Compare desired rules in this form.
model::FwRule canonical(const model::FwRule& r);

// Why a rule cannot be built (empty id, port 0, missing interface or target, ...); ok otherwise.
backend::Status check_rule(const model::FwRule& r);

// The libnftnl rule for r (family inet, table, chain, expressions, comment). r must pass
// check_rule.
RulePtr build_rule(const model::FwRule& r);
RulePtr build_established_rule();

// What the rule's expressions mean; never looks at the comment.
NftDecoded decode_rule(const nftnl_rule* r);
// The comment in the rule's userdata, when it carries one.
std::optional<std::string> rule_comment(const nftnl_rule* r);

// One NFT_MSG_NEWRULE message of a dump (read() feeds each one here): the live rule when it parses
// and belongs to `table`, else nothing. A malformed message is skipped, never trusted to libnftnl
// as it is (see nft.cpp).
std::optional<NftRuleLive> parse_rule_message(const nlmsghdr* nlh, const std::string& table);

// The rules read() reports for a table, by id, and for each id the live rule it came from
// (none for skeleton damage ids).
struct View {
    std::map<std::string, model::FwRule> rules;
    std::map<std::string, const NftRuleLive*> source;
};
View view(const NftTableLive& table);

}  // namespace nft

// Firewall over nftables. The netlink socket is opened by the constructor, in the network
// namespace of the calling thread, and every call acts there.
class Nft : public backend::Firewall {
public:
    Nft();
    ~Nft() override;
    Nft(const Nft&) = delete;
    Nft& operator=(const Nft&) = delete;

    backend::Result<std::map<std::string, model::FwRule>> read() override;
    backend::Status apply(const backend::FirewallChange& change) override;
    backend::Status remove_all() override;

    // The full snapshot read() is built from (chains, handles, generation).
    backend::Result<NftTableLive> read_table();

private:
    backend::Result<NftTableLive> read_table_once(bool* consistent);
    backend::Result<uint32_t> read_genid();
    backend::Status apply_once(const backend::FirewallChange& change, const NftTableLive& live);
    backend::Status send_batch(std::vector<char>& buf, const std::vector<std::pair<uint32_t, std::string>>& what,
                               uint32_t ack_seq);
    uint32_t next_seq() { return seq_++; }

    mnl_socket* nl_ = nullptr;
    std::optional<backend::Error> open_error_;
    uint32_t portid_ = 0;
    uint32_t seq_ = 1;
    // The snapshot of the last read(); used by apply() when the ruleset generation still matches,
    // which the kernel checks atomically (NFNL_BATCH_GENID) when the batch is committed.
    std::optional<NftTableLive> cache_;
};

}  // namespace wgf::linux_
