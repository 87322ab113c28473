// The nftables backend against the kernel, in namespaces the tests create: apply and read back,
// idempotence (handles unchanged), rule-level removal, forwards as elements of the DNAT maps (one
// element per change), restoring a deleted or hand-edited table, remove_all, and a real DNAT
// through a router namespace. The `nft` CLI is the independent check.
#include <algorithm>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#define CATCH_CONFIG_ENABLE_PAIR_STRINGMAKER
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "backend/backend.hpp"
#include "linux/nft.hpp"
#include "support.hpp"

using wgf::backend::FirewallChange;
using wgf::linux_::Nft;
using wgf::model::FwKind;
using wgf::model::FwRule;
using wgf::model::IpAddr;
using wgf::model::Proto;
using wgf::test::Netns;
using Rules = std::map<std::string, FwRule>;

namespace Catch {
template <>
struct StringMaker<FwRule> {
    static std::string convert(const FwRule& r) {
        static const char* kinds[] = {"accept_udp", "forward", "dnat", "masquerade"};
        return fmt::format("{{{} {} {} port {} iif '{}' oif '{}' to {} to_port {}}}", r.id, kinds[int(r.kind)],
                           wgf::model::to_string(r.proto), r.port, r.iif, r.oif, r.to ? r.to->str() : "-", r.to_port);
    }
};
}  // namespace Catch

namespace {

FwRule rule(const std::string& id, FwKind kind) {
    FwRule r;
    r.id = id;
    r.kind = kind;
    return r;
}
FwRule accept_udp(const std::string& id, uint16_t port) {
    FwRule r = rule(id, FwKind::accept_udp);
    r.port = port;
    return r;
}
FwRule forward(const std::string& id, const std::string& iif, const std::string& oif) {
    FwRule r = rule(id, FwKind::forward);
    r.iif = iif;
    r.oif = oif;
    return r;
}
FwRule dnat(const std::string& id, Proto p, uint16_t port, const std::string& to, uint16_t to_port) {
    FwRule r = rule(id, FwKind::dnat);
    r.proto = p;
    r.port = port;
    r.to = IpAddr::parse(to);
    r.to_port = to_port;
    return r;
}
FwRule masquerade(const std::string& id, const std::string& oif) {
    FwRule r = rule(id, FwKind::masquerade);
    r.oif = oif;
    return r;
}

Rules by_id(const std::vector<FwRule>& rules) {
    Rules out;
    for (const auto& r : rules) out.emplace(r.id, r);
    return out;
}

// The change a reconciler would compute: replace what differs, remove what is not desired.
FirewallChange diff(const Rules& live, const Rules& desired) {
    FirewallChange c;
    for (const auto& [id, r] : live) {
        auto it = desired.find(id);
        if (it == desired.end() || it->second != r) c.remove.push_back(id);
    }
    for (const auto& [id, r] : desired) {
        auto it = live.find(id);
        if (it == live.end() || it->second != r) c.add.push_back(r);
    }
    return c;
}

// The netlink socket belongs to the namespace it was opened in.
std::unique_ptr<Nft> nft_in(const Netns& ns) {
    wgf::test::InNetns in(ns);
    return std::make_unique<Nft>();
}

std::vector<std::string> ids(const Rules& rules) {
    std::vector<std::string> out;
    for (const auto& [id, r] : rules) out.push_back(id);
    return out;
}

wgf::backend::FirewallLive read_live(Nft& fw) {
    auto got = fw.read();
    if (!got) FAIL("read: " << got.error().message);
    return *got;
}

// The recognised rules only; read_live() has the damage too.
Rules read_ok(Nft& fw) { return read_live(fw).rules; }

// Checks that `got` reports what a whole read of the table as it is now reports: the dump of
// another backend, which takes no read-back or earlier read of this one.
void check_same_as_whole(const Netns& ns, const wgf::backend::FirewallLive& got) {
    auto other = nft_in(ns);
    auto t = other->read_table();
    if (!t) FAIL("read_table: " << t.error().message);
    wgf::linux_::nft::View v = wgf::linux_::nft::view(*t);
    CHECK(got.rules == v.rules);
    CHECK(got.damage == v.damage);
}

using What = wgf::model::FwDamage::What;

bool has_damage(const wgf::backend::FirewallLive& live, What what, const std::string& name = {}) {
    return std::any_of(live.damage.begin(), live.damage.end(), [&](const auto& d) { return d.what == what && d.name == name; });
}

bool has_damaged_rule(const wgf::backend::FirewallLive& live, const std::string& handle) {
    return std::any_of(live.damage.begin(), live.damage.end(),
                       [&](const auto& d) { return d.what == What::rule && std::to_string(d.handle) == handle; });
}

void apply_ok(Nft& fw, const FirewallChange& c) {
    auto s = fw.apply(c);
    if (!s) FAIL("apply: " << s.error().message);
}

// Reads, applies the diff to `desired`, and checks the table now reads back exactly as desired.
void reconcile(Nft& fw, const Rules& desired) {
    Rules live = read_ok(fw);
    apply_ok(fw, diff(live, desired));
    auto after = read_live(fw);
    INFO("ids after apply: " << Catch::StringMaker<std::vector<std::string>>::convert(ids(after.rules)));
    CHECK(after.rules == desired);
    CHECK(after.damage.empty());
}

// comment -> handle of every rule in our table, from `nft -j` (rules without a comment as "#N").
std::map<std::string, int64_t> nft_handles(const Netns& ns) {
    auto r = ns.sh("nft -j list table inet wg-fleet");
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out);
    std::map<std::string, int64_t> out;
    for (const auto& item : j.at("nftables")) {
        if (!item.contains("rule")) continue;
        const auto& rule = item.at("rule");
        int64_t h = rule.at("handle").get<int64_t>();
        std::string key = rule.contains("comment") ? rule.at("comment").get<std::string>() : "#" + std::to_string(h);
        out.emplace(key, h);
    }
    return out;
}

// The number of kRules-like rules that are rules (not map elements).
size_t rule_count(const std::vector<FwRule>& rules) {
    return static_cast<size_t>(std::count_if(rules.begin(), rules.end(), [](const FwRule& r) { return r.kind != FwKind::dnat; }));
}

// The listing's lines, sorted: the same table whatever order its maps and rules were made in.
bool same_lines(const std::string& a, const std::string& b) {
    auto lines = [](const std::string& text) {
        std::vector<std::string> out;
        size_t start = 0;
        for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) out.push_back(text.substr(start, nl - start));
        out.push_back(text.substr(start));
        std::sort(out.begin(), out.end());
        return out;
    };
    return lines(a) == lines(b);
}

std::string nft_list(const Netns& ns) {
    auto r = ns.sh("nft list table inet wg-fleet 2>&1");
    INFO(r.out);
    REQUIRE(r.status == 0);
    return r.out;
}

const std::vector<FwRule> kRules = {
    accept_udp("accept-mesh", 51820),
    forward("forward-mesh", "wg-mesh", "wg-mesh"),
    forward("route-mesh", "wg-mesh", ""),
    dnat("dnat-web-v4", Proto::tcp, 8080, "192.0.2.5", 80),
    dnat("dnat-web-v6", Proto::tcp, 8080, "2001:db8::5", 80),
    dnat("dnat-dns-v6", Proto::udp, 5353, "2001:db8::53", 53),
    masquerade("masquerade-mesh", "wg-mesh"),
};

}  // namespace

TEST_CASE("nft: apply every rule kind, read back, list with comments, apply again changes nothing", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);

    CHECK(read_ok(*fw).empty());  // no table yet
    CHECK(ns.sh("nft list table inet wg-fleet").status != 0);

    apply_ok(*fw, FirewallChange{{}, kRules});
    CHECK(read_ok(*fw) == desired);

    std::string listed = nft_list(ns);
    INFO(listed);
    for (const char* line : {
             "type filter hook input priority filter; policy accept;",
             "type filter hook forward priority filter; policy accept;",
             "type nat hook prerouting priority dstnat; policy accept;",
             "type nat hook postrouting priority srcnat; policy accept;",
             "ct state established,related accept comment \"wg-fleet:established\"",
             "udp dport 51820 accept comment \"accept-mesh\"",
             "iifname \"wg-mesh\" oifname \"wg-mesh\" accept comment \"forward-mesh\"",
             "iifname \"wg-mesh\" accept comment \"route-mesh\"",
             "map fwd4 {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n",
             "map fwd6 {\n\t\ttype inet_proto . inet_service : ipv6_addr . inet_service\n",
             "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @fwd4 comment \"wg-fleet:fwd4\"",
             "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @fwd6 comment \"wg-fleet:fwd6\"",
             "tcp . 8080 comment \"dnat-web-v4\" : 192.0.2.5 . 80",
             "tcp . 8080 comment \"dnat-web-v6\" : 2001:db8::5 . 80",
             "udp . 5353 comment \"dnat-dns-v6\" : 2001:db8::53 . 53",
             "oifname \"wg-mesh\" ct status dnat masquerade comment \"masquerade-mesh\"",
         }) {
        INFO(line);
        CHECK(listed.find(line) != std::string::npos);
    }
    // The established rule heads the forward chain.
    CHECK(listed.find("ct state established") < listed.find("comment \"forward-mesh\""));

    auto handles = nft_handles(ns);
    CHECK(handles.size() == rule_count(kRules) + 3);  // the established rule and the maps' two
    std::string before = ns.sh("nft -a list ruleset").out;

    SECTION("an empty change touches nothing") {
        apply_ok(*fw, FirewallChange{});
        CHECK(nft_handles(ns) == handles);
        CHECK(ns.sh("nft -a list ruleset").out == before);
        CHECK(diff(read_ok(*fw), desired).add.empty());
    }
    SECTION("adding rules that are already there as they are touches nothing") {
        apply_ok(*fw, FirewallChange{{}, kRules});
        CHECK(nft_handles(ns) == handles);
        CHECK(read_ok(*fw) == desired);
    }
    SECTION("a second backend object in the same namespace sees the same rules") {
        auto other = nft_in(ns);
        CHECK(read_ok(*other) == desired);
        apply_ok(*other, FirewallChange{});
        CHECK(nft_handles(ns) == handles);
    }
}

TEST_CASE("nft: removing or replacing one rule leaves the others' handles alone", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);
    apply_ok(*fw, FirewallChange{{}, kRules});
    auto handles = nft_handles(ns);

    SECTION("remove one") {
        read_ok(*fw);
        apply_ok(*fw, FirewallChange{{"route-mesh"}, {}});
        desired.erase("route-mesh");
        CHECK(read_ok(*fw) == desired);
        auto after = nft_handles(ns);
        handles.erase("route-mesh");
        CHECK(after == handles);
    }
    SECTION("remove one forward: one element deleted, in a batch of its own") {
        read_ok(*fw);
        apply_ok(*fw, FirewallChange{{"dnat-web-v6"}, {}});
        CHECK(fw->last_batch() ==
              std::vector<std::string>{"commit nftables batch", "delete 1 element from map inet wg-fleet fwd6", "end nftables batch"});
        desired.erase("dnat-web-v6");
        CHECK(read_ok(*fw) == desired);
        CHECK(nft_handles(ns) == handles);
        std::string listed = nft_list(ns);
        CHECK(listed.find("dnat-web-v6") == std::string::npos);
        CHECK(listed.find("udp . 5353 comment \"dnat-dns-v6\" : 2001:db8::53 . 53") != std::string::npos);
    }
    SECTION("add one forward: one element added, in a batch of its own") {
        read_ok(*fw);
        FwRule added = dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016);
        apply_ok(*fw, FirewallChange{{}, {added}});
        CHECK(fw->last_batch() == std::vector<std::string>{"commit nftables batch", "add forward 'dnat-game-v4' to map inet wg-fleet fwd4",
                                                           "end nftables batch"});
        desired.emplace(added.id, added);
        CHECK(read_ok(*fw) == desired);
        CHECK(nft_handles(ns) == handles);
        CHECK(nft_list(ns).find("udp . 27015 comment \"dnat-game-v4\" : 192.0.2.7 . 27016") != std::string::npos);
    }
    SECTION("change one forward (remove + add of the same id): its element replaced, the rules untouched") {
        FwRule moved = dnat("dnat-web-v4", Proto::tcp, 8443, "192.0.2.6", 443);
        desired["dnat-web-v4"] = moved;
        reconcile(*fw, desired);
        CHECK(fw->last_batch() == std::vector<std::string>{"commit nftables batch", "delete 1 element from map inet wg-fleet fwd4",
                                                           "add forward 'dnat-web-v4' to map inet wg-fleet fwd4", "end nftables batch"});
        CHECK(nft_handles(ns) == handles);
        std::string listed = nft_list(ns);
        CHECK(listed.find("tcp . 8443 comment \"dnat-web-v4\" : 192.0.2.6 . 443") != std::string::npos);
        CHECK(listed.find("192.0.2.5") == std::string::npos);
    }
    SECTION("a forward keeping its port reads back with its port as the target port") {
        FwRule keep = dnat("dnat-keep-v6", Proto::udp, 9999, "2001:db8::9", 0);
        apply_ok(*fw, FirewallChange{{}, {keep}});
        keep.to_port = 9999;
        desired.emplace(keep.id, keep);
        CHECK(read_ok(*fw) == desired);
    }
    SECTION("two forwards of one protocol and port in one map are refused") {
        auto s = fw->apply(FirewallChange{
            {}, {dnat("dnat-a-v4", Proto::tcp, 7000, "192.0.2.8", 70), dnat("dnat-b-v4", Proto::tcp, 7000, "192.0.2.9", 70)}});
        REQUIRE_FALSE(s);
        CHECK(s.error().message == "firewall change adds two forwards of tcp port 7000 to map fwd4 ('dnat-b-v4' is the second)");
        CHECK(read_ok(*fw) == desired);
    }
    SECTION("a forward renamed onto the key of one that stays in the change takes the key over") {
        FwRule renamed = dnat("dnat-www-v4", Proto::tcp, 8080, "192.0.2.5", 80);
        apply_ok(*fw, FirewallChange{{}, {renamed}});
        desired.erase("dnat-web-v4");
        desired.emplace(renamed.id, renamed);
        CHECK(read_ok(*fw) == desired);
    }
    SECTION("add one without a prior read") {
        auto fresh = nft_in(ns);
        apply_ok(*fresh, FirewallChange{{}, {accept_udp("accept-other", 51821)}});
        desired.emplace("accept-other", accept_udp("accept-other", 51821));
        CHECK(read_ok(*fresh) == desired);
        auto after = nft_handles(ns);
        after.erase("accept-other");
        CHECK(after == handles);
    }
    SECTION("removing an id that is not there is a no-op") {
        read_ok(*fw);
        apply_ok(*fw, FirewallChange{{"no-such-rule"}, {}});
        CHECK(nft_handles(ns) == handles);
    }
    SECTION("a stale snapshot is refreshed before handles are used") {
        read_ok(*fw);  // cached snapshot
        // Someone else deletes and re-adds a rule: its handle changes after our read.
        REQUIRE(
            ns.sh("nft delete rule inet wg-fleet postrouting handle " + std::to_string(handles.at("masquerade-mesh")) +
                  " && nft add rule inet wg-fleet postrouting oifname \"wg-mesh\" ct status dnat masquerade comment \"masquerade-mesh\"")
                .status == 0);
        apply_ok(*fw, FirewallChange{{"masquerade-mesh"}, {}});
        desired.erase("masquerade-mesh");
        CHECK(read_ok(*fw) == desired);
    }
}

// The read after an apply that changed map elements only reads back those elements (the
// generation proves nothing else changed); it must report exactly what a whole read reports, and
// give way to a whole read whenever anything else committed in between.
TEST_CASE("nft: the read after an apply of elements reads back only them, and the same as a whole read", "[nft]") {
    Netns ns("wgfr");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);
    apply_ok(*fw, FirewallChange{{}, kRules});
    // The table was made from nothing: more than elements, so the next read is whole.
    read_ok(*fw);
    CHECK(fw->last_read_back() == 0);
    auto same_as_whole = [&](const wgf::backend::FirewallLive& got) { check_same_as_whole(ns, got); };

    SECTION("one added, one removed, one changed: each read back") {
        FwRule added = dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016);
        apply_ok(*fw, FirewallChange{{}, {added}});
        desired.emplace(added.id, added);
        auto got = read_live(*fw);
        CHECK(fw->last_read_back() == 1);
        CHECK(got.rules == desired);
        same_as_whole(got);

        apply_ok(*fw, FirewallChange{{"dnat-dns-v6"}, {}});
        desired.erase("dnat-dns-v6");
        got = read_live(*fw);
        CHECK(fw->last_read_back() == 1);
        CHECK(got.rules == desired);
        same_as_whole(got);

        FwRule moved = dnat("dnat-web-v4", Proto::tcp, 8443, "192.0.2.6", 443);
        desired["dnat-web-v4"] = moved;
        reconcile(*fw, desired);
        CHECK(fw->last_read_back() == 2);  // the old key deleted, the new one added
        same_as_whole(read_live(*fw));
        CHECK(fw->last_read_back() == 0);  // nothing applied since the last read
    }
    SECTION("the same key deleted and added again (a forward's target changed) is read back as added") {
        FwRule retargeted = dnat("dnat-web-v4", Proto::tcp, 8080, "192.0.2.9", 81);
        desired["dnat-web-v4"] = retargeted;
        reconcile(*fw, desired);
        CHECK(fw->last_read_back() == 1);
    }
    SECTION("a commit by someone else after the apply: the read is whole and sees it") {
        FwRule added = dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016);
        apply_ok(*fw, FirewallChange{{}, {added}});
        REQUIRE(ns.sh("nft delete element inet wg-fleet fwd4 \"{ tcp . 8080 }\"").status == 0);
        auto got = read_live(*fw);
        CHECK(fw->last_read_back() == 0);
        CHECK(got.rules.count("dnat-game-v4") == 1);
        CHECK(got.rules.count("dnat-web-v4") == 0);
        same_as_whole(got);
    }
    SECTION("a commit elsewhere in the ruleset (another table) also makes the read whole") {
        apply_ok(*fw, FirewallChange{{"dnat-dns-v6"}, {}});
        REQUIRE(ns.sh("nft add table inet other").status == 0);
        auto got = read_live(*fw);
        CHECK(fw->last_read_back() == 0);
        desired.erase("dnat-dns-v6");
        CHECK(got.rules == desired);
    }
    SECTION("an apply that changes a rule besides elements is read whole") {
        apply_ok(*fw, FirewallChange{{"accept-mesh"}, {dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016)}});
        auto got = read_live(*fw);
        CHECK(fw->last_read_back() == 0);
        same_as_whole(got);
    }
}

// A read with nothing committed since the last read (in this process and namespace) takes that
// read's table instead of dumping it again (as `watch` reads at each edit); any commit, in any
// table, makes it whole again, and it must always report what a whole read reports.
TEST_CASE("nft: a read with nothing committed since the last read takes its table, and any commit makes it whole", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfk");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);
    apply_ok(*fw, FirewallChange{{}, kRules});
    auto same_as_whole = [&](const wgf::backend::FirewallLive& got) { check_same_as_whole(ns, got); };
    auto first = read_live(*fw);
    CHECK_FALSE(fw->last_read_kept());  // the apply made the table: read whole
    auto again = read_live(*fw);
    CHECK(fw->last_read_kept());
    CHECK(again.rules == desired);
    CHECK(again.generation == first.generation);
    same_as_whole(again);
    // Another backend in the same process and namespace takes it too.
    auto next = nft_in(ns);
    CHECK(read_live(*next).rules == desired);
    CHECK(next->last_read_kept());

    SECTION("an element deleted by hand") {
        REQUIRE(ns.sh("nft delete element inet wg-fleet fwd4 \"{ tcp . 8080 }\"").status == 0);
        auto got = read_live(*fw);
        CHECK_FALSE(fw->last_read_kept());
        CHECK(got.rules.count("dnat-web-v4") == 0);
        same_as_whole(got);
    }
    SECTION("a commit in another table") {
        REQUIRE(ns.sh("nft add table inet other").status == 0);
        auto got = read_live(*fw);
        CHECK_FALSE(fw->last_read_kept());
        CHECK(got.rules == desired);
    }
    SECTION("the table deleted and made again by hand as it was") {
        const std::string listed = nft_list(ns);
        REQUIRE(ns.sh("nft delete table inet wg-fleet && nft -f - <<'EOF'\n" + listed + "\nEOF").status == 0);
        auto got = read_live(*fw);
        CHECK_FALSE(fw->last_read_kept());
        same_as_whole(got);
    }
    SECTION("an apply in between is read back, and the read after it takes that") {
        FwRule added = dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016);
        apply_ok(*fw, FirewallChange{{}, {added}});
        desired.emplace(added.id, added);
        CHECK(read_ok(*fw) == desired);
        CHECK(fw->last_read_back() == 1);
        CHECK_FALSE(fw->last_read_kept());
        auto got = read_live(*fw);
        CHECK(fw->last_read_kept());
        CHECK(got.rules == desired);
        same_as_whole(got);
    }
    SECTION("a read in another namespace in between: this one's table is read whole") {
        Netns other_ns("wgfk2");
        auto there = nft_in(other_ns);
        apply_ok(*there, FirewallChange{{}, {dnat("dnat-game-v4", Proto::udp, 27015, "192.0.2.7", 27016)}});
        read_live(*there);
        auto got = read_live(*fw);
        CHECK_FALSE(fw->last_read_kept());
        CHECK(got.rules == desired);
    }
}

TEST_CASE("nft: a deleted or hand-edited table is restored by the next apply", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);
    apply_ok(*fw, FirewallChange{{}, kRules});
    std::string pristine = nft_list(ns);
    auto handles = nft_handles(ns);
    auto h = [&](const std::string& id) { return std::to_string(handles.at(id)); };

    SECTION("table deleted") {
        REQUIRE(ns.sh("nft delete table inet wg-fleet").status == 0);
        CHECK(read_ok(*fw).empty());
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a rule replaced by hand with a different port") {
        REQUIRE(ns.sh("nft replace rule inet wg-fleet input handle " + h("accept-mesh") + " udp dport 51821 accept comment \"accept-mesh\"")
                    .status == 0);
        Rules live = read_ok(*fw);
        CHECK(live.at("accept-mesh").port == 51821);
        CHECK(live != desired);
        reconcile(*fw, desired);
        CHECK(nft_list(ns).find("udp dport 51820 accept comment \"accept-mesh\"") != std::string::npos);
    }
    SECTION("a counter added by hand makes the rule foreign") {
        REQUIRE(ns.sh("nft replace rule inet wg-fleet forward handle " + h("forward-mesh") +
                      " iifname \"wg-mesh\" oifname \"wg-mesh\" counter accept comment \"forward-mesh\"")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(live.rules.count("forward-mesh") == 0);
        CHECK(has_damaged_rule(live, h("forward-mesh")));
        reconcile(*fw, desired);
        CHECK(nft_list(ns).find("counter") == std::string::npos);
    }
    SECTION("a masquerade of all traffic out of the interface (not only DNATed) is replaced") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet postrouting handle " + h("masquerade-mesh") +
                      " && nft add rule inet wg-fleet postrouting oifname \"wg-mesh\" masquerade comment \"masquerade-mesh\"")
                    .status == 0);
        Rules live = read_ok(*fw);
        CHECK(live.count("masquerade-mesh") == 0);
        reconcile(*fw, desired);
        std::string listed = nft_list(ns);
        INFO(listed);
        CHECK(listed.find("oifname \"wg-mesh\" masquerade") == std::string::npos);
        CHECK(listed.find("oifname \"wg-mesh\" ct status dnat masquerade comment \"masquerade-mesh\"") != std::string::npos);
    }
    SECTION("a rule deleted and a different one added without a comment") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet postrouting handle " + h("masquerade-mesh") +
                      " && nft add rule inet wg-fleet postrouting oifname \"eth9\" ct status dnat masquerade")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(live.rules.count("masquerade-mesh") == 0);
        CHECK(live.rules.size() == desired.size() - 1);
        REQUIRE(live.damage.size() == 1);
        REQUIRE(live.damage[0].decoded);
        CHECK(live.damage[0].decoded->kind == FwKind::masquerade);
        CHECK(live.damage[0].decoded->oif == "eth9");
        reconcile(*fw, desired);
        CHECK(nft_list(ns).find("eth9") == std::string::npos);
    }
    SECTION("the established rule deleted") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet forward handle " + h("wg-fleet:established")).status == 0);
        CHECK(has_damage(read_live(*fw), What::established));
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a base chain's policy set to drop") {
        REQUIRE(ns.sh("nft \"add chain inet wg-fleet input { type filter hook input priority 0; policy drop; }\"").status == 0);
        CHECK(has_damage(read_live(*fw), What::chain, "input"));
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("an element added by hand without a comment, one with another target, one with a counter") {
        REQUIRE(ns.sh("nft add element inet wg-fleet fwd4 \"{ tcp . 9000 : 192.0.2.66 . 90 }\" && "
                      "nft delete element inet wg-fleet fwd6 \"{ udp . 5353 }\" && "
                      "nft add element inet wg-fleet fwd6 \"{ udp . 5353 comment \\\"dnat-dns-v6\\\" : 2001:db8::66 . 53 }\"")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(live.rules.count("dnat-web-v4") == 1);
        CHECK(live.rules.at("dnat-dns-v6").to->str() == "2001:db8::66");  // read as a forward, with its live target
        REQUIRE(live.damage.size() == 1);
        CHECK(live.damage[0].what == What::element);
        CHECK(live.damage[0].name == "fwd4");
        REQUIRE(live.damage[0].decoded);
        CHECK(live.damage[0].decoded->port == 9000);
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a map emptied by hand") {
        REQUIRE(ns.sh("nft flush map inet wg-fleet fwd6").status == 0);
        auto live = read_live(*fw);
        CHECK(live.rules.count("dnat-web-v6") == 0);
        CHECK(live.damage.empty());  // an empty map is as wg-fleet builds it; the diff adds the forwards
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a map and its rule deleted") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet prerouting handle " + h("wg-fleet:fwd4") + " && nft delete map inet wg-fleet fwd4")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(has_damage(live, What::map, "fwd4"));
        CHECK(live.rules.count("dnat-web-v4") == 0);
        reconcile(*fw, desired);
        CHECK(same_lines(nft_list(ns), pristine));  // a map or rule recreated lists after the others
    }
    SECTION("a map's rule deleted, the map kept") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet prerouting handle " + h("wg-fleet:fwd6")).status == 0);
        auto live = read_live(*fw);
        CHECK(has_damage(live, What::map, "fwd6"));
        CHECK(live.rules.count("dnat-web-v6") == 1);
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a map of another shape in our map's place") {
        REQUIRE(ns.sh("nft delete rule inet wg-fleet prerouting handle " + h("wg-fleet:fwd4") +
                      " && nft delete map inet wg-fleet fwd4 && "
                      "nft \"add map inet wg-fleet fwd4 { type inet_service : ipv4_addr; elements = { 8080 : 192.0.2.99 }; }\" && "
                      "nft add rule inet wg-fleet prerouting meta nfproto ipv4 dnat ip to th dport map @fwd4")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(has_damage(live, What::map, "fwd4"));
        CHECK(live.rules.count("dnat-web-v4") == 0);
        reconcile(*fw, desired);
        CHECK(same_lines(nft_list(ns), pristine));  // a map or rule recreated lists after the others
    }
    SECTION("a forward as a rule of its own (as earlier versions built it) is replaced by its element") {
        REQUIRE(ns.sh("nft delete element inet wg-fleet fwd4 \"{ tcp . 8080 }\" && nft add rule inet wg-fleet prerouting meta nfproto ipv4 "
                      "tcp dport 8080 dnat ip to 192.0.2.5:80 comment \"dnat-web-v4\"")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(live.rules.count("dnat-web-v4") == 0);
        REQUIRE(live.damage.size() == 1);
        CHECK(live.damage[0].what == What::rule);
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("a base chain recreated at another priority") {
        REQUIRE(
            ns.sh("nft flush chain inet wg-fleet prerouting && nft delete chain inet wg-fleet prerouting && "
                  "nft \"add chain inet wg-fleet prerouting { type nat hook prerouting priority 0; }\" && "
                  "nft add rule inet wg-fleet prerouting meta nfproto ipv4 tcp dport 8080 dnat ip to 192.0.2.5:80 comment \"dnat-web-v4\"")
                .status == 0);
        auto live = read_live(*fw);
        CHECK(has_damage(live, What::chain, "prerouting"));
        CHECK(live.rules.count("dnat-web-v4") == 1);  // its element, in our map
        CHECK(has_damage(live, What::map, "fwd4"));   // the map's rule went with the chain
        reconcile(*fw, desired);
        CHECK(same_lines(nft_list(ns), pristine));  // a map or rule recreated lists after the others
        CHECK(nft_list(ns).find("type nat hook prerouting priority dstnat; policy accept;") != std::string::npos);
    }
    SECTION("a foreign chain, a jump to it and a set") {
        REQUIRE(ns.sh("nft add chain inet wg-fleet mine && nft add rule inet wg-fleet mine counter && "
                      "nft add rule inet wg-fleet forward jump mine && "
                      "nft \"add set inet wg-fleet blocked { type ipv4_addr; }\"")
                    .status == 0);
        auto live = read_live(*fw);
        CHECK(has_damage(live, What::chain, "mine"));
        CHECK(has_damage(live, What::set, "blocked"));
        reconcile(*fw, desired);
        CHECK(nft_list(ns) == pristine);
    }
    SECTION("the table made dormant") {
        REQUIRE(ns.sh("nft \"add table inet wg-fleet { flags dormant; }\"").status == 0);
        CHECK(has_damage(read_live(*fw), What::table_flags));
        reconcile(*fw, desired);
        CHECK(nft_list(ns).find("dormant") == std::string::npos);
    }
}

// Across runs a read may skip our table while the ruleset is at the generation of an earlier
// read (firewall.kept): any commit, ours or by hand, in our table or another, must make it read
// the table again, and the generation must name the namespace and the boot.
TEST_CASE("nft: read_if_changed skips the table only while nothing was committed since the read it names", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfg");
    auto fw = nft_in(ns);
    Rules desired = by_id(kRules);
    apply_ok(*fw, FirewallChange{{}, kRules});
    auto first = read_live(*fw);
    REQUIRE(first.rules == desired);
    REQUIRE_FALSE(first.generation.empty());
    CHECK_FALSE(first.table_unchanged);
    // Another process's backend in the same namespace, as the next run has.
    auto next = nft_in(ns);
    auto read_if_changed = [&](Nft& n, const std::string& generation) {
        auto got = n.read_if_changed(generation);
        if (!got) FAIL("read_if_changed: " << got.error().message);
        return *got;
    };
    auto whole = [&] {
        auto other = nft_in(ns);
        return read_live(*other);
    };

    SECTION("nothing committed: the table is not read, the other tables are") {
        REQUIRE(ns.sh("nft add table ip theirs && nft add chain ip theirs input \"{ type filter hook input priority 0; policy drop; }\"")
                    .status == 0);
        auto base = whole();
        REQUIRE(base.foreign_drops.size() == 1);
        auto got = read_if_changed(*next, base.generation);
        CHECK(got.table_unchanged);
        CHECK(got.rules.empty());
        CHECK(got.damage.empty());
        CHECK(got.generation == base.generation);
        CHECK(got.foreign_drops == base.foreign_drops);
        // An empty generation names nothing: the table is read.
        auto full = read_if_changed(*next, "");
        CHECK_FALSE(full.table_unchanged);
        CHECK(full.rules == desired);
    }
    SECTION("an element deleted by hand") {
        REQUIRE(ns.sh("nft delete element inet wg-fleet fwd4 \"{ tcp . 8080 }\"").status == 0);
        auto got = read_if_changed(*next, first.generation);
        CHECK_FALSE(got.table_unchanged);
        CHECK(got.rules.count("dnat-web-v4") == 0);
        CHECK(got.generation != first.generation);
        auto w = whole();
        CHECK(got.rules == w.rules);
        CHECK(got.damage == w.damage);
        // The repair is a commit too: the generation of the read before it no longer holds.
        reconcile(*next, desired);
        CHECK_FALSE(read_if_changed(*next, got.generation).table_unchanged);
    }
    SECTION("the table deleted by hand, and made again") {
        REQUIRE(ns.sh("nft delete table inet wg-fleet").status == 0);
        auto got = read_if_changed(*next, first.generation);
        CHECK_FALSE(got.table_unchanged);
        CHECK(got.rules.empty());
        reconcile(*next, desired);
        auto again = read_live(*next);
        CHECK(again.generation != first.generation);
        CHECK_FALSE(read_if_changed(*next, first.generation).table_unchanged);
        CHECK(read_if_changed(*next, again.generation).table_unchanged);
    }
    SECTION("a commit in another table") {
        REQUIRE(ns.sh("nft add table inet someone_else").status == 0);
        auto got = read_if_changed(*next, first.generation);
        CHECK_FALSE(got.table_unchanged);
        CHECK(got.rules == desired);
    }
    SECTION("our own apply of one element") {
        apply_ok(*fw, FirewallChange{{"dnat-web-v6"}, {}});
        CHECK_FALSE(read_if_changed(*next, first.generation).table_unchanged);
    }
    SECTION("another namespace, or another boot, at the same generation") {
        auto parts = [](const std::string& g) {
            std::vector<std::string> out;
            std::istringstream in(g);
            for (std::string w; in >> w;) out.push_back(w);
            return out;
        };
        auto p = parts(first.generation);
        REQUIRE(p.size() == 4);
        std::string other_boot = "00000000-0000-0000-0000-000000000000 " + p[1] + " " + p[2] + " " + p[3];
        CHECK_FALSE(read_if_changed(*next, other_boot).table_unchanged);
        Netns ns2("wgfh");
        auto there = nft_in(ns2);
        apply_ok(*there, FirewallChange{{}, kRules});
        auto theirs = read_live(*there);
        REQUIRE_FALSE(theirs.generation.empty());
        CHECK(parts(theirs.generation)[1] != p[1]);
        // Their generation and table handle, with our namespace's cookie: not theirs.
        auto q = parts(theirs.generation);
        CHECK_FALSE(read_if_changed(*there, q[0] + " " + p[1] + " " + q[2] + " " + q[3]).table_unchanged);
        CHECK(read_if_changed(*there, theirs.generation).table_unchanged);
    }
}

TEST_CASE("nft: remove_all deletes only our table and is idempotent", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    REQUIRE(ns.sh("nft add table inet other && nft add table ip wg-fleet").status == 0);
    auto fw = nft_in(ns);
    apply_ok(*fw, FirewallChange{{}, kRules});
    REQUIRE(fw->remove_all());
    CHECK(ns.sh("nft list table inet wg-fleet").status != 0);
    CHECK(read_ok(*fw).empty());
    CHECK(fw->remove_all());
    CHECK(ns.sh("nft list table inet other").status == 0);
    CHECK(ns.sh("nft list table ip wg-fleet").status == 0);
    // An empty change on an absent table leaves it absent.
    apply_ok(*fw, FirewallChange{});
    CHECK(ns.sh("nft list table inet wg-fleet").status != 0);
}

TEST_CASE("nft: invalid rules are refused before anything is sent", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    auto fw = nft_in(ns);
    apply_ok(*fw, FirewallChange{{}, kRules});
    auto handles = nft_handles(ns);
    auto s = fw->apply(FirewallChange{{"accept-mesh"}, {accept_udp("bad", 0)}});
    REQUIRE_FALSE(s);
    CHECK(s.error().message == "firewall rule 'bad': accept_udp needs a port 1..65535");
    CHECK(nft_handles(ns) == handles);
}

TEST_CASE("nft: a DNAT forward carries a real TCP connection through a router namespace", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns client("wgfc"), router("wgfr"), server("wgfs");
    // Documentation ranges only, on links that exist only between these namespaces.
    wgf::test::veth_pair(client, "vc", "198.51.100.1/24", router, "vrc", "198.51.100.2/24");
    wgf::test::veth_pair(router, "vrs", "192.0.2.1/24", server, "vs", "192.0.2.2/24");
    REQUIRE(client.sh("ip -6 addr add 2001:db8:1::1/64 dev vc nodad").status == 0);
    REQUIRE(router.sh("ip -6 addr add 2001:db8:1::2/64 dev vrc nodad && ip -6 addr add 2001:db8:2::1/64 dev vrs nodad").status == 0);
    REQUIRE(server.sh("ip -6 addr add 2001:db8:2::2/64 dev vs nodad").status == 0);
    REQUIRE(router.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1").status == 0);

    // A bounded server: answers each connection with the address it came from, exits after 60 s
    // without a connection or after 20 connections.
    const std::string server_py =
        "import socket\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('::', 8000)); s.listen(8); s.settimeout(60)\n"
        "for _ in range(20):\n"
        "    c, a = s.accept(); c.sendall(('hello from ' + a[0] + '\\n').encode()); c.close()\n";
    wgf::test::Process srv({"python3", "-c", server_py}, &server);
    REQUIRE(wgf::test::wait_for([&] { return server.sh("ss -ltnH | grep -q :8000").status == 0; }));

    auto connect = [&](const std::string& addr) {
        return wgf::test::sh("ip netns exec " + client.name() +
                             " timeout 10 python3 -c \"import socket,sys; c = socket.create_connection((sys.argv[1], 8080), timeout=5); "
                             "print(c.recv(100).decode().strip())\" " +
                             addr);
    };
    // Nothing listens on the router's port 8080 until the forward exists.
    CHECK(connect("198.51.100.2").status != 0);

    auto fw = nft_in(router);
    apply_ok(*fw,
             FirewallChange{{},
                            {dnat("dnat-v4", Proto::tcp, 8080, "192.0.2.2", 8000), dnat("dnat-v6", Proto::tcp, 8080, "2001:db8:2::2", 8000),
                             forward("forward-in", "vrc", "vrs"), masquerade("masq-out", "vrs")}});

    auto v4 = connect("198.51.100.2");
    INFO(v4.out);
    CHECK(v4.status == 0);
    // Masqueraded: the server sees the router's address on its link.
    CHECK(v4.out.find("hello from ::ffff:192.0.2.1") != std::string::npos);

    auto v6 = connect("2001:db8:1::2");
    INFO(v6.out);
    CHECK(v6.status == 0);
    CHECK(v6.out.find("hello from 2001:db8:2::1") != std::string::npos);

    // Traffic the router only routes (no forward DNATed it) keeps its source address.
    REQUIRE(server.sh("ip route add 198.51.100.0/24 via 192.0.2.1").status == 0);
    REQUIRE(client.sh("ip route add 192.0.2.0/24 via 198.51.100.2").status == 0);
    auto routed = wgf::test::sh("ip netns exec " + client.name() +
                                " timeout 10 python3 -c \"import socket; c = socket.create_connection(('192.0.2.2', 8000), timeout=5); "
                                "print(c.recv(100).decode().strip())\"");
    INFO(routed.out);
    CHECK(routed.status == 0);
    CHECK(routed.out.find("hello from ::ffff:198.51.100.1") != std::string::npos);

    // Without the IPv4 forward the IPv4 connection fails again; IPv6 still works.
    apply_ok(*fw, FirewallChange{{"dnat-v4"}, {}});
    CHECK(connect("198.51.100.2").status != 0);
    CHECK(connect("2001:db8:1::2").status == 0);
}

TEST_CASE("nft: other tables' input and forward chains that drop by policy are read, nothing else", "[nft]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    // Docker's and firewalld's shapes (iptables-nft's ip filter FORWARD, an inet table), chains that
    // accept or sit at other hooks, and a regular chain: only the three dropping base chains count.
    REQUIRE(ns.sh("nft add table ip filter && "
                  "nft add chain ip filter FORWARD \"{ type filter hook forward priority 0; policy drop; }\" && "
                  "nft add chain ip filter INPUT \"{ type filter hook input priority 0; policy accept; }\" && "
                  "nft add chain ip filter DOCKER && "
                  "nft add table inet firewalld && "
                  "nft add chain inet firewalld filter_INPUT \"{ type filter hook input priority 10; policy drop; }\" && "
                  "nft add chain inet firewalld filter_OUTPUT \"{ type filter hook output priority 10; policy drop; }\" && "
                  "nft add table ip6 mine && "
                  "nft add chain ip6 mine through \"{ type filter hook forward priority -5; policy drop; }\" && "
                  "nft add table bridge br && "
                  "nft add chain bridge br through \"{ type filter hook forward priority 0; policy drop; }\"")
                .status == 0);
    auto fw = nft_in(ns);
    apply_ok(*fw, FirewallChange{{}, kRules});
    using wgf::model::ForeignDrop;
    const std::vector<ForeignDrop> expected{
        {.family = "inet", .table = "firewalld", .chain = "filter_INPUT", .hook = "input", .priority = 10},
        {.family = "ip", .table = "filter", .chain = "FORWARD", .hook = "forward", .priority = 0},
        {.family = "ip6", .table = "mine", .chain = "through", .hook = "forward", .priority = -5},
    };
    CHECK(read_live(*fw).foreign_drops == expected);
    // Our own table's chains never count, and a policy changed to accept is gone from the list.
    REQUIRE(ns.sh("nft add chain ip6 mine through \"{ policy accept; }\"").status == 0);
    auto live = read_live(*fw);
    CHECK(live.foreign_drops.size() == 2);
    CHECK(std::none_of(live.foreign_drops.begin(), live.foreign_drops.end(), [](const ForeignDrop& d) { return d.table == "wg-fleet"; }));
}

TEST_CASE("nft: a marked accept rule in another table's chain is inserted first, read back, and removed alone", "[nft][foreign]") {
    if (!wgf::test::netns_available()) return;
    Netns ns("wgfn");
    // A Docker-like chain with a rule of its own, and an inet chain of another table.
    REQUIRE(ns.sh("nft add table ip filter && "
                  "nft add chain ip filter FORWARD \"{ type filter hook forward priority 0; policy drop; }\" && "
                  "nft add rule ip filter FORWARD ip saddr 203.0.113.9 counter drop && "
                  "nft add table inet fw && "
                  "nft add chain inet fw in \"{ type filter hook input priority 0; policy drop; }\"")
                .status == 0);
    const std::string theirs = ns.sh("nft list chain ip filter FORWARD").out;
    auto fw = nft_in(ns);
    using wgf::model::ForeignRule;
    const ForeignRule iif{.family = "ip", .table = "filter", .chain = "FORWARD", .id = "iif-wg0", .as_built = true};
    const ForeignRule oif{.family = "ip", .table = "filter", .chain = "FORWARD", .id = "oif-wg0", .as_built = true};
    const ForeignRule udp{.family = "inet", .table = "fw", .chain = "in", .id = "udp-dport-51820", .as_built = true};
    for (const auto& r : {iif, oif, udp}) REQUIRE(fw->add_foreign(r).is_ok());
    // nft itself reads them as the rules the warning names, at the head of each chain.
    const std::string listed = ns.sh("nft list chain ip filter FORWARD").out;
    INFO(listed);
    CHECK(listed.find("oifname \"wg0\" accept comment \"wg-fleet:oif-wg0\"") <
          listed.find("iifname \"wg0\" accept comment \"wg-fleet:iif-wg0\""));
    CHECK(listed.find("iifname \"wg0\" accept comment \"wg-fleet:iif-wg0\"") < listed.find("ip saddr 203.0.113.9"));
    CHECK(ns.sh("nft list chain inet fw in").out.find("udp dport 51820 accept comment \"wg-fleet:udp-dport-51820\"") != std::string::npos);
    auto live = read_live(*fw);
    CHECK(live.foreign_rules == std::map<std::string, ForeignRule>{{iif.key(), iif}, {oif.key(), oif}, {udp.key(), udp}});

    // A marked rule edited by hand (a counter) reads as not built by us; a copy of its comment too.
    REQUIRE(ns.sh("nft insert rule ip filter FORWARD iifname wg0 counter accept comment \\\"wg-fleet:oif-wg0\\\"").status == 0);
    live = read_live(*fw);
    CHECK_FALSE(live.foreign_rules.at(oif.key()).as_built);
    CHECK(live.foreign_rules.at(iif.key()).as_built);

    // Removing one id deletes every rule carrying its comment and nothing else.
    REQUIRE(fw->remove_foreign(oif).is_ok());
    live = read_live(*fw);
    CHECK(live.foreign_rules == std::map<std::string, ForeignRule>{{iif.key(), iif}, {udp.key(), udp}});
    REQUIRE(fw->remove_foreign(iif).is_ok());
    CHECK(ns.sh("nft list chain ip filter FORWARD").out == theirs);
    CHECK(fw->remove_foreign(iif).is_ok());  // none left: nothing to do
    // A chain that is gone: nothing to remove, and the table and chain are never created.
    REQUIRE(ns.sh("nft delete table inet fw").status == 0);
    CHECK(fw->remove_foreign(udp).is_ok());
    CHECK(ns.sh("nft list table inet fw").status != 0);
    CHECK_FALSE(fw->add_foreign(udp).is_ok());
    CHECK(ns.sh("nft list table inet fw").status != 0);
    CHECK(read_live(*fw).foreign_rules.empty());
}
