// The nftables backend: wg-fleet's own table `inet wg-fleet`, changed through libnftnl + libmnl.
//
// Layout of the table (everything in it is ours; anything else found there is reported so the
// next apply removes it):
//   chain input       type filter hook input       priority 0     policy accept  (accept_udp)
//   chain forward     type filter hook forward     priority 0     policy accept  (forward)
//   chain prerouting  type nat    hook prerouting  priority -100  policy accept  (the maps' rules)
//   chain postrouting type nat    hook postrouting priority 100   policy accept  (masquerade)
//   map fwd4 { type inet_proto . inet_service : ipv4_addr . inet_service; }     (dnat, IPv4)
//   map fwd6 { type inet_proto . inet_service : ipv6_addr . inet_service; }     (dnat, IPv6)
// plus the skeleton's own rules, which read() does not report: `ct state established,related
// accept` at the head of forward (comment kEstablishedId) and, in prerouting,
// `meta nfproto ipv4 dnat ip to meta l4proto . th dport map @fwd4` (comment "wg-fleet:fwd4")
// and its IPv6 twin.
//
// One rule per FwRule, its id in the rule's userdata as an nft comment, except forwards: each is
// one element of the map of its target's family, its id as the element's comment. The rules and
// elements are built and decoded by the pure codec in nft_codec.hpp, so a rule or element edited
// by hand reads back different and the next apply replaces it.
//
// An apply sends only what differs (rules deleted by handle and appended, elements deleted and
// added by key), so adding or removing one forward is one NEWSETELEM or DELSETELEM in a batch of
// its own, whatever the number of forwards, and the kernel's lookup of a forward is one hash
// lookup instead of a walk over one rule per forward. apply() reuses the handles and keys of the
// last read() in the same network namespace (by any Nft of the process) when the ruleset
// generation is unchanged (the kernel enforces it with NFNL_BATCH_GENID), so read + apply dumps
// the table once.
//
// Across runs, read_if_changed() skips the table while the ruleset is still at the generation
// of an earlier read (FirewallLive::generation): nftables bumps its generation, per network
// namespace, with every commit in any table, and nothing else changes our table: its maps have
// no timeouts and no rule of ours adds to them from the packet path (a table that has any of
// that reads as damage, which a caller never keeps), and a table the kernel drops without a
// commit (one owned by a process that exits) has flags, which is damage too. The generation
// names the boot (the counter starts again at each boot) and the namespace (each counts its
// own) and the table's handle, a new one whenever the table is made again.
//
// The read after an apply whose batch changed map elements only (adding or removing forwards)
// does not dump the table again: the batch was committed against the generation of a whole
// read, so while the generation is the one that commit made (read before and after), the table
// is that read with the batch's elements changed. read() then reads back each changed element
// from the kernel (NFT_MSG_GETSETELEM by key: an added one must be there as built, a deleted
// one absent) and checks it; anything else (another commit, an element not as sent, more than a
// few hundred changes) makes it read the whole table as before.
//
// Whatever apply would not build as it is, read() reports as model::FwDamage beside the rules (a
// rule by its handle, a chain or set by its name, a map or its rule, an element, the established
// rule, the table's flags), so a diff against read() is never empty while the table differs from
// what apply would build.
// apply() repairs all of it whatever ids the change removes; removing an id that is not there
// is a no-op, and adding an id that is there replaces it (or leaves it alone when it is equal).
//
// Outside our table, with firewall: foreign_accept: accept rules inserted at the head of other
// tables' dropping chains (model::ForeignRule), ours by their comment alone; only rules carrying
// it are ever deleted, and no other table or chain is created, changed or deleted.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/nft_codec.hpp"

namespace wgf::linux_ {

// Firewall over nftables. The netlink socket is opened by the constructor, in the network
// namespace of the calling thread, and every call acts there.
class Nft : public backend::Firewall {
public:
    Nft();
    ~Nft() override;
    Nft(const Nft&) = delete;
    Nft& operator=(const Nft&) = delete;

    backend::Result<backend::FirewallLive> read() override;
    backend::Result<backend::FirewallLive> read_if_changed(const std::string& generation) override;
    backend::Status apply(const backend::FirewallChange& change) override;
    backend::Status remove_all() override;
    backend::Status add_foreign(const model::ForeignRule& rule) override;
    backend::Status remove_foreign(const model::ForeignRule& rule) override;

    // The full snapshot read() is built from (chains, handles, generation).
    backend::Result<NftTableLive> read_table();
    // What the last batch apply() sent held, one line per message (BEGIN and END included).
    const std::vector<std::string>& last_batch() const { return last_batch_; }
    // How many map elements the last read() read back one by one instead of dumping the table:
    // 0 when it read the table whole (see read()).
    size_t last_read_back() const { return last_read_back_; }
    // Whether the last read() took the table from the read before it (in this process, this
    // network namespace), nothing having committed in any table since: no dump.
    bool last_read_kept() const { return last_read_kept_; }

private:
    backend::Result<NftTableLive> read_table_once(bool* consistent);
    backend::Result<uint32_t> read_genid();
    // Whether the table exists, its flags and handle (read_table_once's first step).
    backend::Status read_table_head(NftTableLive& live);
    // FirewallLive::generation of a table read at live.genid: the boot id, the network
    // namespace's cookie, the generation and the table's handle ("-" when there is no table).
    // Empty when the boot or the namespace cannot be named.
    std::string generation_of(const NftTableLive& live) const;
    // The other tables' parts of read(): their dropping chains, our marked rules, the
    // iptables-legacy tables.
    backend::Status read_foreign(backend::FirewallLive& out);
    // Other tables' base chains at the input and forward hooks of ip, ip6 and inet that drop by
    // policy (backend::FirewallLive::foreign_drops).
    backend::Result<std::vector<model::ForeignDrop>> read_foreign_drops();
    // Our marked rules in other tables (backend::FirewallLive::foreign_rules).
    backend::Result<std::map<std::string, model::ForeignRule>> read_foreign_rules();
    // The marked rules of one chain, from a dump of it; an absent table or chain has none.
    backend::Result<std::vector<nft::ForeignRuleLive>> read_foreign_chain(const model::ForeignRule& where);
    // The map elements a batch changed, when it changed nothing else.
    struct ElemChange {
        bool only_elements = false;
        std::map<std::string, std::set<std::string>> deleted;     // keys, by map
        std::map<std::string, std::vector<model::FwRule>> added;  // canonical, by map
    };
    backend::Status apply_once(const backend::FirewallChange& change, const NftTableLive& live, const nft::View& v, ElemChange& changed);
    // The table as the last apply() left it, when its batch changed map elements only and the
    // generation is still the one its commit made: each changed element read back and checked.
    // Nothing when that does not hold; then read() dumps the table.
    backend::Result<std::optional<NftTableLive>> read_back_applied();
    // The generation as generation_of() names it, read as the generation, the table's handle and
    // the generation again; empty when something committed in between (or it cannot be named).
    backend::Result<std::string> current_generation();
    // The last read()'s table (taken from the snapshot apply() would use), when its generation is
    // the current one: nothing committed in any table since it was read, so the table is that.
    backend::Result<std::optional<NftTableLive>> snapshot_unchanged();
    backend::Status send_batch(std::vector<char>& buf, const std::vector<std::pair<uint32_t, std::string>>& what, uint32_t ack_seq);
    uint32_t next_seq() { return seq_++; }

    NlPtr<mnl_socket> nl_;
    std::optional<backend::Error> open_error_;
    uint32_t portid_ = 0;
    uint32_t seq_ = 1;
    uint64_t netns_ = 0;  // the cookie of the socket's network namespace (0: unknown)
    std::vector<std::string> last_batch_;
    size_t last_read_back_ = 0;
    bool last_read_kept_ = false;
};

}  // namespace wgf::linux_
