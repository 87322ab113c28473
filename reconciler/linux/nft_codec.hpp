// The nftables rule codec of table `inet wg-fleet`, without any I/O: building libnftnl rule
// objects from model::FwRule, decoding rules (and NFT_MSG_NEWRULE messages of a dump) back, and
// the view read() reports of a table snapshot. The netlink exchange around it is nft.hpp.
//
// One rule per FwRule, its id in the rule's userdata as an nft comment (the TLV nft writes, so
// `nft list` prints `comment "id"`). Decoding evaluates the expressions symbolically, so a rule
// edited by hand decodes different (or unknown) and the next apply replaces it.
//
// Forwards (FwKind::dnat) are no rules of their own but elements of two maps, one per address
// family, keyed by protocol and port and carrying the id as the element's comment:
//   map fwd4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
//   meta nfproto ipv4 dnat ip to meta l4proto . th dport map @fwd4      (and fwd6, ip6)
// The two maps and their lookup rules belong to the table's skeleton.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.hpp"
#include "linux/nl_ptr.hpp"
#include "model/host_state.hpp"

struct nlmsghdr;

namespace wgf::linux_ {

inline constexpr const char* kEstablishedId = "wg-fleet:established";

// The shape a rule's expressions decode to.
struct NftDecoded {
    enum class What { unknown, fw_rule, established, dnat_map };
    What what = What::unknown;
    model::FwRule rule;  // fw_rule: every field but id
    std::string map;     // dnat_map: the map the rule looks the destination up in
};

struct NftRuleLive {
    uint64_t handle = 0;
    std::string chain;
    std::optional<std::string> comment;  // present when the userdata holds a comment
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

// A named set or map of the table, with what tells ours from anything else.
struct NftSetLive {
    std::string name;
    uint32_t flags = 0, key_type = 0, key_len = 0, data_type = 0, data_len = 0;
    bool extra = false;  // a timeout, expressions, a size limit, ...: nothing we build
};

// One element of a DNAT map.
struct NftElemLive {
    std::string set;
    std::string key;                       // the raw key (what a delete names)
    std::optional<std::string> comment;    // present when the userdata holds a comment
    std::optional<model::FwRule> decoded;  // every field but id, when an element we build
};

// Everything read() looked at, kept so that apply() can find handles without dumping again.
struct NftTableLive {
    bool exists = false;
    uint32_t flags = 0;
    uint32_t genid = 0;   // ruleset generation the dumps were taken at
    uint64_t handle = 0;  // the table's handle (a table made again gets a new one)
    std::vector<NftChainLive> chains;
    std::vector<NftSetLive> sets;       // named (non-anonymous) sets and maps
    std::vector<NftRuleLive> rules;     // in chain order
    std::vector<NftElemLive> elements;  // of the sets that are ours (set_ours)
};

namespace nft {

using RulePtr = NlPtr<nftnl_rule>;

// A base chain of the table's skeleton.
struct BaseChainSpec {
    const char* name;
    const char* type;
    uint32_t hook;
    int32_t priority;
};
// input, forward, prerouting, postrouting, in the order apply() creates them.
const std::vector<BaseChainSpec>& base_chains();
// The spec of the base chain called name; null for a chain that is not part of the skeleton.
const BaseChainSpec* base_chain_spec(const std::string& name);

// A DNAT map of the skeleton: one per address family.
struct DnatMapSpec {
    const char* name;
    uint8_t nfproto;    // NFPROTO_IPV4 / NFPROTO_IPV6
    uint32_t addr_len;  // 4 / 16
};
// fwd4, fwd6.
const std::vector<DnatMapSpec>& dnat_maps();
// The spec of the map called name; null for any other name.
const DnatMapSpec* dnat_map_spec(const std::string& name);
// The map a forward's element lives in (by its target's family).
const DnatMapSpec& dnat_map_for(const model::FwRule& r);
// Whether a live set is one of our maps exactly as build_dnat_map makes it.
bool set_ours(const NftSetLive& s);

using SetPtr = NlPtr<nftnl_set>;
// The empty map (family inet, table, name, types, lengths).
SetPtr build_dnat_map(const DnatMapSpec& m);
// `meta nfproto F dnat F to meta l4proto . th dport map @NAME`.
RulePtr build_dnat_map_rule(const DnatMapSpec& m);
// The comment of a map's lookup rule ("wg-fleet:fwd4").
std::string dnat_map_rule_comment(const DnatMapSpec& m);
// The raw key of a forward's element: the protocol and the port, each in a 32-bit register.
std::string dnat_key(const model::FwRule& r);
// A set object of map m holding elements: with data and comment (for NEWSETELEM) or keys only
// (for DELSETELEM). Each rule must pass check_rule and belong to m.
SetPtr build_dnat_elements(const DnatMapSpec& m, const std::vector<const model::FwRule*>& rules, bool with_data);
// The same for raw keys (deleting elements read back, whatever they hold).
SetPtr build_dnat_keys(const DnatMapSpec& m, const std::vector<const std::string*>& keys);

// One NFT_MSG_NEWSETELEM message of a dump: its elements of map `set` in `table`, each decoded
// when it is one we build. Parsed without libnftnl, each attribute checked.
std::vector<NftElemLive> parse_elem_message(const nlmsghdr* nlh, const std::string& table, const std::string& set);

// An empty rule of our table (family inet) in chain.
RulePtr new_rule(const char* chain);

// The base chain a kind's rules live in.
const char* chain_for(model::FwKind kind);

// The rule with the fields its kind does not use cleared (proto is udp for kinds without one;
// a dnat's to_port 0 becomes its port): what read() returns for it. Compare desired rules in this
// form.
model::FwRule canonical(const model::FwRule& r);

// Why a rule cannot be built (empty id or one starting with "wg-fleet:", port 0, missing interface or target, ...); ok otherwise.
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

// What read() reports for a table: the rules it recognises, by id, with the live rule each came
// from, and the damage (sorted), with the live rules among it for apply() to delete.
struct View {
    std::map<std::string, model::FwRule> rules;
    std::map<std::string, const NftRuleLive*> source;                 // ids read from rules
    std::unordered_map<std::string, const NftElemLive*> elem_source;  // ids read from map elements
    std::vector<model::FwDamage> damage;
    std::vector<const NftRuleLive*> damaged_rules;
    std::vector<const NftElemLive*> damaged_elements;
    std::set<std::string> bad_sets;           // sets to delete: not ours, or one of our maps misshapen
    std::set<std::string> missing_maps;       // our maps to create (absent, or deleted as misshapen)
    std::set<std::string> missing_map_rules;  // lookup rules to add
};
View view(const NftTableLive& table);

// The chains the next apply deletes with all their rules: a base chain whose type, hook or
// priority differ (they cannot be updated in place), or a chain that is not ours.
std::set<std::string> chains_to_recreate(const NftTableLive& table);

// ---- Rules of ours in other tables' chains (firewall: foreign_accept) ----------------------

// The rule for r.id ("udp-dport-PORT", "iif-IFNAME", "oif-IFNAME": accept), in r's table and
// chain of `family` (NFPROTO_*), its comment model::kForeignRuleMark + id; null when the id is
// not one wg-fleet builds.
RulePtr build_foreign_rule(const model::ForeignRule& r, uint32_t family);

// A rule of another table than ours that carries our mark.
struct ForeignRuleLive {
    uint32_t family = 0;  // NFPROTO_*
    std::string table, chain;
    uint64_t handle = 0;
    std::string id;         // the comment without the mark
    bool as_built = false;  // its expressions are build_foreign_rule's for id
};
// One NFT_MSG_NEWRULE message of a dump of any table: the rule when it carries our mark (in a
// table other than `inet ours`); a rule of a shape wg-fleet never builds is not read.
std::optional<ForeignRuleLive> parse_foreign_rule_message(const nlmsghdr* nlh, const std::string& ours);

}  // namespace nft

}  // namespace wgf::linux_
