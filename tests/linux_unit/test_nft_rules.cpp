// Root-free tests of the nftables rule layer: every FwRule kind is built as a libnftnl rule, sent
// through the netlink wire format and decoded back to the same rule; the comment round-trips in
// nft's userdata layout; edits that change a rule's meaning decode as something else; the DNAT
// maps' rules, sets and elements as nft builds them and back; and view() turns a table snapshot
// into the ids read() reports.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <vector>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <catch2/catch.hpp>

#include "linux/nft_codec.hpp"

using wgf::linux_::NftDecoded;
using wgf::linux_::NftElemLive;
using wgf::linux_::NftSetLive;
using wgf::linux_::NftRuleLive;
using wgf::linux_::NftTableLive;
using wgf::model::FwKind;
using wgf::model::FwRule;
using wgf::model::IpAddr;
using wgf::model::Proto;
namespace nft = wgf::linux_::nft;

namespace {

FwRule accept_udp(const std::string& id, uint16_t port) {
    FwRule r;
    r.id = id;
    r.kind = FwKind::accept_udp;
    r.port = port;
    return r;
}
FwRule forward(const std::string& id, const std::string& iif, const std::string& oif) {
    FwRule r;
    r.id = id;
    r.kind = FwKind::forward;
    r.iif = iif;
    r.oif = oif;
    return r;
}
FwRule dnat(const std::string& id, Proto p, uint16_t port, const std::string& to, uint16_t to_port) {
    FwRule r;
    r.id = id;
    r.kind = FwKind::dnat;
    r.proto = p;
    r.port = port;
    r.to = IpAddr::parse(to);
    r.to_port = to_port;
    return r;
}
FwRule masquerade(const std::string& id, const std::string& oif) {
    FwRule r;
    r.id = id;
    r.kind = FwKind::masquerade;
    r.oif = oif;
    return r;
}

// Serializes the rule as an NFT_MSG_NEWRULE message and parses it back, as the kernel would see
// it and as a dump hands it to read().
nft::RulePtr wire_round_trip(const nftnl_rule* r) {
    std::vector<char> buf(16384);
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE, 1);
    nftnl_rule_nlmsg_build_payload(nlh, const_cast<nftnl_rule*>(r));
    nft::RulePtr back(nftnl_rule_alloc());
    REQUIRE(nftnl_rule_nlmsg_parse(nlh, back.get()) == 0);
    return back;
}

FwRule decode_as_rule(const nftnl_rule* r) {
    NftDecoded d = nft::decode_rule(r);
    REQUIRE(d.what == NftDecoded::What::fw_rule);
    FwRule out = d.rule;
    out.id = nft::rule_comment(r).value_or("");
    return out;
}

std::vector<std::string> expr_names(const nftnl_rule* r) {
    std::vector<std::string> names;
    nftnl_expr_iter* it = nftnl_expr_iter_create(r);
    for (nftnl_expr* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it))
        names.emplace_back(nftnl_expr_get_str(e, NFTNL_EXPR_NAME));
    nftnl_expr_iter_destroy(it);
    return names;
}

// The n-th expression of the rule (for targeted edits).
nftnl_expr* nth_expr(nftnl_rule* r, size_t n) {
    nftnl_expr_iter* it = nftnl_expr_iter_create(r);
    nftnl_expr* e = nftnl_expr_iter_next(it);
    for (size_t i = 0; e && i < n; ++i) e = nftnl_expr_iter_next(it);
    nftnl_expr_iter_destroy(it);
    return e;
}

}  // namespace

TEST_CASE("every rule kind decodes back to the same FwRule through the wire format", "[nft]") {
    std::vector<FwRule> rules = {
        accept_udp("accept-mesh", 51820),
        forward("forward-mesh", "wg-mesh", "wg-mesh"),
        forward("route-mesh", "wg-mesh", ""),
        dnat("dnat-web-v4", Proto::tcp, 8080, "10.77.0.5", 80),
        dnat("dnat-web-v6", Proto::tcp, 8080, "fd00:77::5", 80),
        dnat("dnat-dns-v4", Proto::udp, 5353, "192.0.2.9", 53),
        dnat("dnat-keep-port", Proto::udp, 9999, "fd00::1", 0),
        masquerade("masquerade-mesh", "wg-mesh"),
    };
    for (const auto& r : rules) {
        INFO(r.id);
        REQUIRE(nft::check_rule(r));
        nft::RulePtr built = nft::build_rule(r);
        CHECK(std::string(nftnl_rule_get_str(built.get(), NFTNL_RULE_TABLE)) == "wg-fleet");
        CHECK(std::string(nftnl_rule_get_str(built.get(), NFTNL_RULE_CHAIN)) == nft::chain_for(r.kind));
        CHECK(nftnl_rule_get_u32(built.get(), NFTNL_RULE_FAMILY) == NFPROTO_INET);
        nft::RulePtr back = wire_round_trip(built.get());
        CHECK(decode_as_rule(back.get()) == r);
        CHECK(decode_as_rule(built.get()) == r);
    }
}

TEST_CASE("masquerade covers only DNATed connections", "[nft]") {
    // `nft --debug=netlink` for `oifname "wg-mesh" ct status dnat masquerade`.
    nft::RulePtr r = nft::build_rule(masquerade("m", "wg-mesh"));
    CHECK(expr_names(r.get()) == std::vector<std::string>{"meta", "cmp", "ct", "bitwise", "cmp", "masq"});
    CHECK(nftnl_expr_get_u32(nth_expr(r.get(), 2), NFTNL_EXPR_CT_KEY) == NFT_CT_STATUS);
    uint32_t len = 0;
    const auto* mask = static_cast<const uint32_t*>(nftnl_expr_get(nth_expr(r.get(), 3), NFTNL_EXPR_BITWISE_MASK, &len));
    REQUIRE(len == 4);
    CHECK(*mask == 0x20u);  // IPS_DST_NAT
}

TEST_CASE("rules are built as the expressions nft itself generates", "[nft]") {
    // `nft --debug=netlink` for `meta nfproto ipv4 tcp dport 8080 dnat ip to 10.0.0.2:80`.
    nft::RulePtr r = nft::build_rule(dnat("d", Proto::tcp, 8080, "10.0.0.2", 80));
    CHECK(expr_names(r.get()) == std::vector<std::string>{"meta", "cmp", "meta", "cmp", "payload", "cmp", "immediate", "immediate", "nat"});
    uint32_t len = 0;
    const auto* port = static_cast<const uint8_t*>(nftnl_expr_get(nth_expr(r.get(), 5), NFTNL_EXPR_CMP_DATA, &len));
    REQUIRE(len == 2);
    CHECK(port[0] == 0x1f);
    CHECK(port[1] == 0x90);
    const auto* addr = static_cast<const uint8_t*>(nftnl_expr_get(nth_expr(r.get(), 6), NFTNL_EXPR_IMM_DATA, &len));
    REQUIRE(len == 4);
    CHECK(std::memcmp(addr, "\x0a\x00\x00\x02", 4) == 0);

    // `iifname "wg0"`: the name as 16 NUL-padded bytes.
    nft::RulePtr f = nft::build_rule(forward("f", "wg0", ""));
    const auto* name = static_cast<const char*>(nftnl_expr_get(nth_expr(f.get(), 1), NFTNL_EXPR_CMP_DATA, &len));
    CHECK(len == 16);
    CHECK(std::string(name, len) == std::string("wg0") + std::string(13, '\0'));

    nft::RulePtr e = nft::build_established_rule();
    CHECK(expr_names(e.get()) == std::vector<std::string>{"ct", "bitwise", "cmp", "immediate"});
    CHECK(nft::decode_rule(e.get()).what == NftDecoded::What::established);
    CHECK(nft::rule_comment(e.get()) == std::string(wgf::linux_::kEstablishedId));
}

TEST_CASE("the comment is stored in nft's userdata layout and read back", "[nft]") {
    nft::RulePtr r = nft::build_rule(accept_udp("accept-mesh", 51820));
    uint32_t len = 0;
    const auto* data = static_cast<const uint8_t*>(nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &len));
    // One TLV: type NFTNL_UDATA_RULE_COMMENT, length including the NUL, the string.
    std::string id = "accept-mesh";
    REQUIRE(len == 2 + id.size() + 1);
    CHECK(data[0] == NFTNL_UDATA_RULE_COMMENT);
    CHECK(data[1] == id.size() + 1);
    CHECK(std::string(reinterpret_cast<const char*>(data) + 2) == id);
    CHECK(nft::rule_comment(wire_round_trip(r.get()).get()) == id);

    SECTION("a rule without userdata has no comment") {
        nftnl_rule_unset(r.get(), NFTNL_RULE_USERDATA);
        CHECK_FALSE(nft::rule_comment(r.get()).has_value());
    }
    SECTION("a comment without its NUL is not one") {
        const uint8_t bad[] = {NFTNL_UDATA_RULE_COMMENT, 3, 'a', 'b', 'c'};
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, bad, sizeof bad);
        CHECK_FALSE(nft::rule_comment(r.get()).has_value());
    }
    SECTION("other userdata types are skipped") {
        const uint8_t mixed[] = {NFTNL_UDATA_RULE_EBTABLES_POLICY, 1, 0, NFTNL_UDATA_RULE_COMMENT, 2, 'x', 0};
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, mixed, sizeof mixed);
        CHECK(nft::rule_comment(r.get()) == std::string("x"));
    }
}

TEST_CASE("rules edited to mean something else do not decode as the original", "[nft]") {
    FwRule d = dnat("d", Proto::tcp, 8080, "10.0.0.2", 80);

    SECTION("a different port decodes as that port") {
        nft::RulePtr r = nft::build_rule(d);
        uint16_t other = htons(8081);
        nftnl_expr_set(nth_expr(r.get(), 5), NFTNL_EXPR_CMP_DATA, &other, 2);
        FwRule back = decode_as_rule(wire_round_trip(r.get()).get());
        CHECK(back.port == 8081);
        CHECK(back != d);
    }
    SECTION("an extra statement (a counter) makes the rule unknown") {
        nft::RulePtr r = nft::build_rule(accept_udp("a", 51820));
        nftnl_expr* verdict = nth_expr(r.get(), expr_names(r.get()).size() - 1);
        nftnl_rule_del_expr(verdict);
        nftnl_rule_add_expr(r.get(), nftnl_expr_alloc("counter"));
        nftnl_rule_add_expr(r.get(), verdict);
        CHECK(nft::decode_rule(wire_round_trip(r.get()).get()).what == NftDecoded::What::unknown);
    }
    SECTION("a drop verdict is not an accept rule") {
        nft::RulePtr r = nft::build_rule(forward("f", "wg0", "eth0"));
        nftnl_expr_set_u32(nth_expr(r.get(), 4), NFTNL_EXPR_IMM_VERDICT, NF_DROP);
        CHECK(nft::decode_rule(r.get()).what == NftDecoded::What::unknown);
    }
    SECTION("the kernel's form of a dump (max registers equal to min) is the same rule") {
        nft::RulePtr r = nft::build_rule(d);
        nftnl_expr* nat = nth_expr(r.get(), 8);
        nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1);
        nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFT_REG_2);
        nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FLAGS, 3);  // MAP_IPS | PROTO_SPECIFIED
        CHECK(decode_as_rule(wire_round_trip(r.get()).get()) == d);
    }
    SECTION("an address range is not a single target") {
        nft::RulePtr r = nft::build_rule(d);
        nftnl_expr_set_u32(nth_expr(r.get(), 8), NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_2);
        CHECK(nft::decode_rule(r.get()).what == NftDecoded::What::unknown);
    }
    SECTION("an IPv4 target behind an ipv6 family match is not ours") {
        nft::RulePtr r = nft::build_rule(d);
        uint8_t v6 = NFPROTO_IPV6;
        nftnl_expr_set(nth_expr(r.get(), 1), NFTNL_EXPR_CMP_DATA, &v6, 1);
        CHECK(nft::decode_rule(r.get()).what == NftDecoded::What::unknown);
    }
    SECTION("an interface wildcard (no trailing NUL) is not an exact name") {
        nft::RulePtr r = nft::build_rule(masquerade("m", "eth0"));
        nftnl_expr_set(nth_expr(r.get(), 1), NFTNL_EXPR_CMP_DATA, "eth", 3);
        CHECK(nft::decode_rule(r.get()).what == NftDecoded::What::unknown);
    }
}

TEST_CASE("canonical() and check_rule() agree with what a rule can express", "[nft]") {
    FwRule d = dnat("dnat-web-v4", Proto::tcp, 8080, "10.0.0.2", 80);
    d.oif = "wg-mesh";  // the renderer names the fleet interface; prerouting cannot match it
    FwRule c = nft::canonical(d);
    CHECK(c.oif.empty());
    CHECK(decode_as_rule(nft::build_rule(d).get()) == c);

    FwRule a = accept_udp("a", 1);
    a.iif = "x";
    a.proto = Proto::tcp;
    CHECK(nft::canonical(a) == accept_udp("a", 1));

    CHECK_FALSE(nft::check_rule(accept_udp("", 1)));
    CHECK(nft::check_rule(accept_udp("?handle-3", 1)));  // damage is typed: no id is reserved for it
    CHECK_FALSE(nft::check_rule(accept_udp(wgf::linux_::kEstablishedId, 1)));
    CHECK_FALSE(nft::check_rule(accept_udp(std::string(200, 'x'), 1)));
    CHECK_FALSE(nft::check_rule(accept_udp("a", 0)));
    CHECK_FALSE(nft::check_rule(forward("f", "", "")));
    CHECK_FALSE(nft::check_rule(forward("f", "sixteen-bytes-xx", "")));
    CHECK_FALSE(nft::check_rule(masquerade("m", "")));
    FwRule no_target = dnat("d", Proto::tcp, 1, "10.0.0.1", 2);
    no_target.to.reset();
    CHECK_FALSE(nft::check_rule(no_target));
    auto err = nft::check_rule(accept_udp("accept-x", 0));
    CHECK(err.error().message == "firewall rule 'accept-x': accept_udp needs a port 1..65535");
}

namespace {

NftRuleLive live_rule(uint64_t handle, const FwRule& r, std::optional<std::string> comment) {
    nft::RulePtr built = nft::build_rule(r);
    NftRuleLive l;
    l.handle = handle;
    l.chain = nft::chain_for(r.kind);
    l.comment = std::move(comment);
    l.decoded = nft::decode_rule(built.get());
    return l;
}

// A set as read() records it, taken from what build_dnat_map sends.
NftSetLive set_live(const nft::DnatMapSpec& m) {
    nft::SetPtr s = nft::build_dnat_map(m);
    return NftSetLive{.name = m.name,
                      .flags = nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS),
                      .key_type = nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_TYPE),
                      .key_len = nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN),
                      .data_type = nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_TYPE),
                      .data_len = nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_LEN),
                      .extra = false};
}

NftRuleLive map_rule(uint64_t handle, const nft::DnatMapSpec& m) {
    nft::RulePtr built = nft::build_dnat_map_rule(m);
    NftRuleLive l;
    l.handle = handle;
    l.chain = "prerouting";
    l.comment = nft::rule_comment(built.get());
    l.decoded = nft::decode_rule(built.get());
    return l;
}

// The elements of the forwards as a dump message of map m, parsed back as read() does.
std::vector<NftElemLive> elements_via_wire(const nft::DnatMapSpec& m, const std::vector<FwRule>& rules) {
    std::vector<const FwRule*> ptrs;
    for (const auto& r : rules) ptrs.push_back(&r);
    nft::SetPtr s = nft::build_dnat_elements(m, ptrs, true);
    std::vector<char> buf(65536);
    nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_MULTI, 1);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    return nft::parse_elem_message(nlh, wgf::backend::kNftTable, m.name);
}

NftTableLive healthy_table() {
    NftTableLive t;
    t.exists = true;
    t.chains = {{"input", true, "filter", NF_INET_LOCAL_IN, 0, NF_ACCEPT},
                {"forward", true, "filter", NF_INET_FORWARD, 0, NF_ACCEPT},
                {"prerouting", true, "nat", NF_INET_PRE_ROUTING, -100, NF_ACCEPT},
                {"postrouting", true, "nat", NF_INET_POST_ROUTING, 100, NF_ACCEPT}};
    NftRuleLive est;
    est.handle = 1;
    est.chain = "forward";
    est.comment = wgf::linux_::kEstablishedId;
    est.decoded = nft::decode_rule(nft::build_established_rule().get());
    t.rules.push_back(est);
    for (const auto& m : nft::dnat_maps()) {
        t.sets.push_back(set_live(m));
        t.rules.push_back(map_rule(t.rules.size() + 1, m));
    }
    return t;
}

using What = wgf::model::FwDamage::What;

wgf::model::FwDamage damaged_rule(uint64_t handle, std::optional<FwRule> decoded) {
    if (decoded) decoded->id.clear();
    return {.what = What::rule, .handle = handle, .name = {}, .decoded = decoded};
}

wgf::model::FwDamage damaged(What what, const std::string& name = {}) {
    return {.what = what, .handle = 0, .name = name, .decoded = std::nullopt};
}

}  // namespace

TEST_CASE("view() reports rules by comment and damage as typed entries", "[nft]") {
    SECTION("an absent table is empty") {
        auto v = nft::view(NftTableLive{});
        CHECK(v.rules.empty());
        CHECK(v.damage.empty());
    }

    SECTION("a healthy table shows its rules and hides the skeleton") {
        NftTableLive t = healthy_table();
        t.rules.push_back(live_rule(5, accept_udp("accept-mesh", 51820), "accept-mesh"));
        t.rules.push_back(live_rule(6, masquerade("m", "eth0"), "m"));
        auto v = nft::view(t);
        REQUIRE(v.rules.size() == 2);
        CHECK(v.damage.empty());
        CHECK(v.rules.at("accept-mesh") == accept_udp("accept-mesh", 51820));
        CHECK(v.source.at("m")->handle == 6);
    }

    SECTION("no comment, a duplicate id and an unknown shape read as damaged rules by handle") {
        NftTableLive t = healthy_table();
        t.rules.push_back(live_rule(5, accept_udp("a", 1), std::nullopt));
        t.rules.push_back(live_rule(6, accept_udp("b", 2), "b"));
        t.rules.push_back(live_rule(7, accept_udp("b", 3), "b"));
        NftRuleLive unknown = live_rule(8, accept_udp("c", 4), "c");
        unknown.decoded = NftDecoded{};
        t.rules.push_back(unknown);
        auto v = nft::view(t);
        CHECK(v.rules.size() == 1);
        CHECK(v.rules.at("b").port == 2);
        CHECK(v.damage ==
              std::vector{damaged_rule(5, accept_udp("", 1)), damaged_rule(7, accept_udp("", 3)), damaged_rule(8, std::nullopt)});
        REQUIRE(v.damaged_rules.size() == 3);
        CHECK(v.damaged_rules[0]->handle == 5);
        CHECK(v.damaged_rules[2]->handle == 8);
    }

    SECTION("a rule in the wrong chain is not ours") {
        NftTableLive t = healthy_table();
        NftRuleLive r = live_rule(5, accept_udp("a", 1), "a");
        r.chain = "forward";
        t.rules.push_back(r);
        auto v = nft::view(t);
        CHECK(v.rules.empty());
        CHECK(v.damage == std::vector{damaged_rule(5, accept_udp("", 1))});
    }

    SECTION("skeleton damage") {
        NftTableLive t = healthy_table();
        t.rules.clear();                       // the established rule is gone, and the maps' rules
        t.chains[0].policy = NF_DROP;          // input drops
        t.chains.erase(t.chains.begin() + 2);  // prerouting is gone
        t.chains[2].priority = 50;             // postrouting moved
        t.chains.push_back({"mine", false, "", 0, 0, 0});
        t.sets.push_back(NftSetLive{.name = "blocked"});
        t.flags = 1;
        auto v = nft::view(t);
        std::vector want = {damaged(What::established),          damaged(What::chain, "input"), damaged(What::chain, "prerouting"),
                            damaged(What::chain, "postrouting"), damaged(What::chain, "mine"),  damaged(What::set, "blocked"),
                            damaged(What::table_flags),          damaged(What::map, "fwd4"),    damaged(What::map, "fwd6")};
        std::sort(want.begin(), want.end());
        CHECK(v.damage == want);  // the forward chain is intact
        CHECK(v.rules.empty());
        CHECK(v.damaged_rules.empty());
    }
}

TEST_CASE("a dumped rule message is read through parse_rule_message, and only for wg-fleet's table", "[nft]") {
    FwRule want = masquerade("masquerade:eth0", "eth0");
    auto built = nft::build_rule(want);
    nftnl_rule_set_u64(built.get(), NFTNL_RULE_HANDLE, 42);
    std::vector<char> buf(16384);
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_MULTI, 1);
    nftnl_rule_nlmsg_build_payload(nlh, built.get());
    auto rl = nft::parse_rule_message(nlh, wgf::backend::kNftTable);
    REQUIRE(rl);
    CHECK(rl->handle == 42);
    CHECK(rl->chain == "postrouting");
    CHECK(rl->comment == std::optional<std::string>("masquerade:eth0"));
    REQUIRE(rl->decoded.what == NftDecoded::What::fw_rule);
    CHECK_FALSE(nft::parse_rule_message(nlh, "another-table"));
}

namespace {

// A masquerade rule as a dump message, handle 7, with `edit` applied to its bytes.
std::vector<char> rule_message(const std::function<void(nlmsghdr*, nftnl_rule*)>& edit = {}) {
    auto built = nft::build_rule(masquerade("masquerade:eth0", "eth0"));
    nftnl_rule_set_u64(built.get(), NFTNL_RULE_HANDLE, 7);
    std::vector<char> buf(16384);
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_MULTI, 1);
    nftnl_rule_nlmsg_build_payload(nlh, built.get());
    if (edit) edit(nlh, built.get());
    return buf;
}

// The attribute header just before the first occurrence of `bytes` in the message.
nlattr* attr_before(nlmsghdr* nlh, const std::string& bytes) {
    char* begin = reinterpret_cast<char*>(nlh);
    char* end = begin + nlh->nlmsg_len;
    char* at = std::search(begin, end, bytes.begin(), bytes.end());
    REQUIRE(at != end);
    return reinterpret_cast<nlattr*>(at - sizeof(nlattr));
}

}  // namespace

// libnftnl dereferences a missing expression name and exit()s the process on an attribute of the
// wrong size ("kernel ABI is broken"). The kernel never sends either, but read() must not depend
// on that: such a rule is read as an unknown rule, by its handle, which view() reports as damage.
TEST_CASE("a rule message with an expression without a name is read as unknown, not a crash", "[nft][fuzz]") {
    auto buf = rule_message([](nlmsghdr* nlh, nftnl_rule* r) {
        nlattr* name = attr_before(nlh, expr_names(r).at(0) + '\0');
        REQUIRE(name->nla_type == NFTA_EXPR_NAME);
        name->nla_type = NFTA_EXPR_MAX + 1;
    });
    auto rl = nft::parse_rule_message(reinterpret_cast<nlmsghdr*>(buf.data()), wgf::backend::kNftTable);
    REQUIRE(rl);
    CHECK(rl->handle == 7);
    CHECK(rl->chain == "postrouting");
    CHECK(rl->decoded.what == NftDecoded::What::unknown);
}

TEST_CASE("a rule message with an attribute of the wrong size is read as unknown, not an exit", "[nft][fuzz]") {
    // The first expression of a masquerade rule is meta oifname: shrink its 4-byte key to 2.
    auto buf = rule_message([](nlmsghdr* nlh, nftnl_rule* r) {
        REQUIRE(expr_names(r).at(0) == "meta");
        nlattr* name = attr_before(nlh, std::string("meta") + '\0');
        auto* data = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(name) + NLA_ALIGN(name->nla_len));
        REQUIRE((data->nla_type & NLA_TYPE_MASK) == NFTA_EXPR_DATA);
        auto* key = reinterpret_cast<nlattr*>(data + 1);
        REQUIRE(key->nla_type == NFTA_META_KEY);
        key->nla_len = sizeof(nlattr) + 2;  // the padding keeps the next attribute where it was
    });
    auto rl = nft::parse_rule_message(reinterpret_cast<nlmsghdr*>(buf.data()), wgf::backend::kNftTable);
    REQUIRE(rl);
    CHECK(rl->handle == 7);
    CHECK(rl->decoded.what == NftDecoded::What::unknown);
}

TEST_CASE("a rule comment whose length runs past the userdata is no comment", "[nft][fuzz]") {
    // nft's TLVs: type, length, value. A length past the end must not be read (under the
    // sanitizers, reading it is a heap overflow).
    auto check_udata = [](std::vector<uint8_t> udata) {
        nft::RulePtr r(nftnl_rule_alloc());
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, udata.data(), static_cast<uint32_t>(udata.size()));
        return nft::rule_comment(r.get());
    };
    CHECK(check_udata({NFTNL_UDATA_RULE_COMMENT, 3, 'a', 'b', 0}) == std::optional<std::string>("ab"));
    CHECK_FALSE(check_udata({NFTNL_UDATA_RULE_COMMENT, 200, 'a', 'b', 0}));
    CHECK_FALSE(check_udata({NFTNL_UDATA_RULE_COMMENT, 3, 'a', 'b', 0, 7}));
    CHECK_FALSE(check_udata({NFTNL_UDATA_RULE_COMMENT}));
}

TEST_CASE("the DNAT maps' rules are the expressions nft generates and decode as the skeleton's", "[nft]") {
    // `nft --debug=netlink` for `meta nfproto ipv4 dnat ip to meta l4proto . th dport map @fwd4`:
    //   meta load nfproto => reg 1; cmp eq reg 1 0x02; meta load l4proto => reg 1;
    //   payload load 2b @ transport header + 2 => reg 9; lookup reg 1 set fwd4 dreg 1;
    //   nat dnat ip addr_min reg 1 proto_min reg 9   (ip6: proto_min reg 2)
    for (const auto& m : nft::dnat_maps()) {
        INFO(m.name);
        nft::RulePtr r = nft::build_dnat_map_rule(m);
        CHECK(expr_names(r.get()) == std::vector<std::string>{"meta", "cmp", "meta", "payload", "lookup", "nat"});
        CHECK(nftnl_expr_get_u32(nth_expr(r.get(), 3), NFTNL_EXPR_PAYLOAD_DREG) == 9);
        CHECK(std::string(nftnl_expr_get_str(nth_expr(r.get(), 4), NFTNL_EXPR_LOOKUP_SET)) == m.name);
        CHECK(nftnl_expr_get_u32(nth_expr(r.get(), 5), NFTNL_EXPR_NAT_REG_PROTO_MIN) == (m.nfproto == NFPROTO_IPV4 ? 9u : 2u));
        nft::RulePtr back = wire_round_trip(r.get());
        NftDecoded d = nft::decode_rule(back.get());
        CHECK(d.what == NftDecoded::What::dnat_map);
        CHECK(d.map == m.name);
        CHECK(nft::rule_comment(back.get()) == "wg-fleet:" + std::string(m.name));
    }
    // The IPv4 map's rule with the IPv6 family match is no rule of ours.
    nft::RulePtr crossed = nft::build_dnat_map_rule(nft::dnat_maps()[0]);
    uint8_t v6 = NFPROTO_IPV6;
    nftnl_expr_set(nth_expr(crossed.get(), 1), NFTNL_EXPR_CMP_DATA, &v6, 1);
    CHECK(nft::decode_rule(crossed.get()).what == NftDecoded::What::unknown);
}

TEST_CASE("the DNAT maps are the sets nft makes of `type inet_proto . inet_service : ipv4_addr . inet_service`", "[nft]") {
    // Read back from a map `nft -f` created: key type 781, data type 461 (ip) / 525 (ip6),
    // key length 8, data length 8 / 20, flags map.
    NftSetLive v4 = set_live(nft::dnat_maps()[0]), v6 = set_live(nft::dnat_maps()[1]);
    CHECK(v4.key_type == 781);
    CHECK(v4.data_type == 461);
    CHECK(v6.data_type == 525);
    CHECK(v4.key_len == 8);
    CHECK(v4.data_len == 8);
    CHECK(v6.data_len == 20);
    CHECK(v4.flags == NFT_SET_MAP);
    CHECK(nft::set_ours(v4));
    CHECK(nft::set_ours(v6));
    NftSetLive renamed = v4;
    renamed.name = "fwd6";
    CHECK_FALSE(nft::set_ours(renamed));
    NftSetLive timed = v4;
    timed.extra = true;
    CHECK_FALSE(nft::set_ours(timed));
    NftSetLive other = v4;
    other.name = "blocked";
    CHECK_FALSE(nft::set_ours(other));
}

TEST_CASE("forwards are map elements that decode back through the wire format", "[nft]") {
    std::vector<FwRule> v4 = {dnat("dnat-web-v4", Proto::tcp, 8080, "10.77.0.5", 80),
                              dnat("dnat-dns-v4", Proto::udp, 53, "192.0.2.9", 5353)};
    std::vector<FwRule> v6 = {dnat("dnat-web-v6", Proto::tcp, 8080, "fd00:77::5", 80)};
    auto e4 = elements_via_wire(nft::dnat_maps()[0], v4);
    auto e6 = elements_via_wire(nft::dnat_maps()[1], v6);
    REQUIRE(e4.size() == 2);
    REQUIRE(e6.size() == 1);
    for (size_t i = 0; i < v4.size(); ++i) {
        REQUIRE(e4[i].decoded);
        FwRule got = *e4[i].decoded;
        got.id = e4[i].comment.value_or("");
        CHECK(got == v4[i]);
        CHECK(e4[i].key == nft::dnat_key(v4[i]));
        CHECK(e4[i].set == "fwd4");
    }
    REQUIRE(e6[0].decoded);
    CHECK(e6[0].decoded->to->str() == "fd00:77::5");
    CHECK(e6[0].comment == "dnat-web-v6");
    // The key as nft lays out `tcp . 8080`: the protocol, then the port, each in 32 bits.
    CHECK(nft::dnat_key(v4[0]) == std::string("\x06\0\0\0\x1f\x90\0\0", 8));
    // Elements of another table or map are not read.
    std::vector<const FwRule*> ptrs = {&v4[0]};
    nft::SetPtr s = nft::build_dnat_elements(nft::dnat_maps()[0], ptrs, true);
    std::vector<char> buf(16384);
    nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_MULTI, 1);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    CHECK(nft::parse_elem_message(nlh, "other", "fwd4").empty());
    CHECK(nft::parse_elem_message(nlh, wgf::backend::kNftTable, "fwd6").empty());
}

TEST_CASE("view() reads forwards from the maps' elements, and the maps' damage", "[nft]") {
    NftTableLive t = healthy_table();
    auto add = [&](const nft::DnatMapSpec& m, std::vector<FwRule> rules) {
        for (auto& e : elements_via_wire(m, rules)) t.elements.push_back(std::move(e));
    };
    FwRule web = dnat("dnat-web-v4", Proto::tcp, 8080, "10.77.0.5", 80);
    add(nft::dnat_maps()[0], {web});

    SECTION("an element with a comment is a forward by that id") {
        auto v = nft::view(t);
        CHECK(v.damage.empty());
        CHECK(v.rules.at("dnat-web-v4") == web);
        CHECK(v.elem_source.at("dnat-web-v4")->key == nft::dnat_key(web));
    }
    SECTION("an element without a comment or with a taken id is damage, by map") {
        add(nft::dnat_maps()[0], {dnat("", Proto::tcp, 9000, "10.77.0.6", 90), dnat("dnat-web-v4", Proto::udp, 8080, "10.77.0.7", 80)});
        auto v = nft::view(t);
        CHECK(v.rules.size() == 1);
        REQUIRE(v.damage.size() == 2);
        CHECK(v.damage[0].what == What::element);
        CHECK(v.damage[0].name == "fwd4");
        CHECK(v.damaged_elements.size() == 2);
    }
    SECTION("a map of another shape: damage, deleted with its elements, and its rule no longer ours") {
        t.sets[1].data_len = 16;
        auto v = nft::view(t);
        CHECK(v.damage == std::vector{damaged_rule(3, std::nullopt), damaged(What::map, "fwd6")});
        CHECK(v.bad_sets == std::set<std::string>{"fwd6"});
        CHECK(v.missing_maps == std::set<std::string>{"fwd6"});
        CHECK(v.missing_map_rules == std::set<std::string>{"fwd6"});
    }
    SECTION("a missing map rule") {
        t.rules.pop_back();
        auto v = nft::view(t);
        CHECK(v.damage == std::vector{damaged(What::map, "fwd6")});
        CHECK(v.missing_maps.empty());
        CHECK(v.missing_map_rules == std::set<std::string>{"fwd6"});
    }
    SECTION("a forward as a rule of its own is damage (it belongs in a map)") {
        t.rules.push_back(live_rule(9, web, "dnat-web-v4"));
        auto v = nft::view(t);
        CHECK(v.damage == std::vector{damaged_rule(9, web)});
        CHECK(v.elem_source.count("dnat-web-v4") == 1);
    }
}

TEST_CASE("an exit node's accept and masquerade rules decode back through the wire format", "[nft][exit]") {
    auto from = [](const char* a) {
        auto ip = wgf::model::IpAddr::parse(a);
        REQUIRE(ip);
        return *ip;
    };
    std::vector<FwRule> rules;
    for (const char* a : {"10.70.0.2", "fd36:2a28:22:1a00:5eec:dc4:19aa:8337"}) {
        rules.push_back(FwRule{.id = fmt::format("exit-fwd-laptop-{}", a), .kind = FwKind::exit_forward, .iif = "road", .from = from(a)});
        rules.push_back(FwRule{
            .id = fmt::format("exit-masq-laptop-{}", a), .kind = FwKind::exit_masquerade, .from = from(a), .not_oif = {"mesh", "road"}});
    }
    for (const auto& r : rules) {
        INFO(r.id);
        REQUIRE(nft::check_rule(r));
        nft::RulePtr built = nft::build_rule(r);
        CHECK(std::string(nftnl_rule_get_str(built.get(), NFTNL_RULE_CHAIN)) == nft::chain_for(r.kind));
        CHECK(decode_as_rule(wire_round_trip(built.get()).get()) == r);
    }
    // Not as wg-fleet builds it: an exit masquerade without the interfaces it must not leave by.
    FwRule bare = rules[1];
    bare.not_oif.clear();
    CHECK_FALSE(nft::check_rule(bare));
}
