#include "plan/diff.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include <fmt/format.h>

#include "plan/render.hpp"
#include "plan/sysctls.hpp"

namespace wgf::plan {
namespace {

using model::HostState;
using model::Key;
using model::Prefix;
using model::WgInterface;
using model::WgPeer;

// Phases of a plan. Each rule has its reason:
enum Phase {
    kCreate,   // a device must exist before anything is set on it
    kDevice,   // key and port before peers, so new peers handshake with the final identity
    kLink,     // MTU and up before traffic; the interface's own sysctls before its
               // addresses change (promote_secondaries must hold before a primary goes)
    kRelease,  // removals before additions: a prefix moving from peer A to B is first taken
               // from A, never silently stolen by the kernel's allowed-IP move semantics
    kClaim,
    kAddrDel,  // addresses and routes: stale ones out first, then new ones, so a prefix
    kAddrAdd,  // moving between interfaces never exists twice
    kRouteDel,
    kRouteAdd,
    kSysctl,  // forwarding once the routes exist
    kRuleDel,
    kRuleAdd,
    kFiles,         // hosts and route files last: they name addresses that now exist
    kReload,        // the route files' server reads them once they are all written
    kDeleteDevice,  // a device leaving the fleet goes last, after its routes and files
    kPortFreed,     // a port a leaving device held is taken once it is gone (an interface renamed)
    kPhases
};

template <class Set>
std::vector<Prefix> minus(const Set& a, const Set& b) {
    std::vector<Prefix> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

size_t changed_lines(const std::string& a, const std::string& b) {
    auto lines = [](const std::string& s) {
        std::multiset<std::string> out;
        size_t start = 0;
        while (start < s.size()) {
            auto nl = s.find('\n', start);
            out.insert(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
        return out;
    };
    auto la = lines(a), lb = lines(b);
    std::vector<std::string> d1, d2;
    std::set_difference(la.begin(), la.end(), lb.begin(), lb.end(), std::back_inserter(d1));
    std::set_difference(lb.begin(), lb.end(), la.begin(), la.end(), std::back_inserter(d2));
    return std::max(d1.size(), d2.size());
}

class Differ {
public:
    Differ(const model::Labels& labels, const Ownership& owned, const LiveFacts& facts, const DiffOptions& opts)
        : labels_(labels), owned_(owned), facts_(facts), opts_(opts) {}

    Plan run(const HostState& desired, const HostState& live) {
        for (const auto& [name, have] : live.interfaces)
            if (!desired.interfaces.count(name) && owned_.interfaces.count(name) && have.listen_port)
                freed_ports_.insert(*have.listen_port);
        for (const auto& [name, want] : desired.interfaces) {
            auto it = live.interfaces.find(name);
            diff_interface(want, it == live.interfaces.end() ? nullptr : &it->second);
            const auto& l = labels_.of(name);
            for (const auto& p : l.pending) plan_.pending.push_back(fmt::format("{} in fleet {}", p, l.fleet));
        }
        for (const auto& [name, have] : live.interfaces)
            if (!desired.interfaces.count(name) && owned_.interfaces.count(name)) {
                add(kDeleteDevice, OpDeleteDevice{name});
                deleted_.insert(name);
            }
        diff_routes(desired, live);
        diff_policy_rules(desired, live);
        diff_sysctls(desired, live);
        diff_rules(desired, live);
        diff_foreign_rules(desired, live);
        diff_files(desired, live);
        for (auto& phase : phases_)
            for (auto& op : phase) plan_.ops.push_back(std::move(op));
        return std::move(plan_);
    }

private:
    void add(Phase p, Op op) { phases_[p].push_back(std::move(op)); }

    // The name a peer had when wg-fleet last configured it; "" when none was recorded.
    std::string recorded_name(const std::string& ifname, const Key& key) const {
        if (auto i = owned_.names.find(ifname); i != owned_.names.end())
            if (auto n = i->second.find(key); n != i->second.end()) return n->second;
        return {};
    }

    void diff_interface(const WgInterface& want, const WgInterface* have) {
        static const WgInterface kEmpty;
        const auto& l = labels_.of(want.name);
        if (!have) {
            add(kCreate, OpCreateDevice{.ifname = want.name, .fleet = l.fleet});
            have = &kEmpty;
        }
        bool fresh = have == &kEmpty;
        // A device without a key has no session a new key could end.
        if (l.generate_key)
            add(kDevice, OpSetPrivateKey{.ifname = want.name,
                                         .key_file = l.private_key_file,
                                         .public_key = {},
                                         .fresh = fresh || !have->public_key,
                                         .generate = true});
        else if (want.public_key && have->public_key != want.public_key)
            add(kDevice,
                OpSetPrivateKey{.ifname = want.name, .key_file = l.private_key_file, .public_key = *want.public_key, .fresh = fresh});
        if (want.listen_port && have->listen_port != want.listen_port)
            add(freed_ports_.count(*want.listen_port) ? kPortFreed : kDevice,
                OpSetListenPort{want.name, *want.listen_port, fresh ? std::nullopt : have->listen_port, fresh});
        if (want.mtu && have->mtu != want.mtu) add(kLink, OpSetMtu{want.name, *want.mtu, have->mtu.value_or(0)});
        if (want.up && !have->up) add(kLink, OpSetUp{want.name});
        // Set before the policy rules that rely on it are added (kRouteAdd); cleared only after
        // they are gone (kRouteDel), or the tunnel's own packets would be routed into the tunnel.
        // The device is ours, so a mark nobody wants is cleared.
        if (want.fwmark != have->fwmark)
            add(want.fwmark ? kDevice : kRouteAdd, OpSetFwmark{.ifname = want.name, .fwmark = want.fwmark, .old = have->fwmark});
        diff_peers(want, *have);
        // Addresses: the interface is ours, so any other address on it goes.
        for (const auto& a : minus(have->addresses, want.addresses)) add(kAddrDel, OpDelAddress{want.name, a});
        for (const auto& a : minus(want.addresses, have->addresses)) add(kAddrAdd, OpAddAddress{want.name, a});
    }

    void diff_peers(const WgInterface& want, const WgInterface& have) {
        held_.clear();
        held_built_ = false;
        held_scans_ = 0;
        const auto& ours = owned_.peers.count(want.name) ? owned_.peers.at(want.name) : kNoKeys;
        bool exclusive = opts_.exclusive.count(want.name) > 0;
        const size_t releases = phases_[kRelease].size(), claims = phases_[kClaim].size();
        auto w = want.peers.begin(), h = have.peers.begin();
        // One merge walk over both maps, ordered by public key.
        while (w != want.peers.end() || h != have.peers.end()) {
            if (h == have.peers.end() || (w != want.peers.end() && w->first < h->first)) {
                add(kClaim, OpAddPeer{.ifname = want.name, .peer = w->second, .name = labels_.peer_name(want.name, w->first)});
                ++w;
            } else if (w == want.peers.end() || h->first < w->first) {
                if (ours.count(h->first))
                    add(kRelease, OpRemovePeer{.ifname = want.name, .public_key = h->first, .name = recorded_name(want.name, h->first)});
                else if (exclusive) add(kRelease, OpRemovePeer{.ifname = want.name, .public_key = h->first, .foreign = true});
                else plan_.foreign.push_back(fmt::format("{} on {}", h->first.base64(), want.name));
                ++h;
            } else {
                diff_peer(want.name, w->second, h->second, have);
                ++w;
                ++h;
            }
        }
        pair_key_swaps(have, releases, claims);
    }

    // A member whose key changed: its old key (ours, recorded under its name) goes and its new
    // key comes. The two become one key swap: the addition right after the removal, so one set
    // of the device does both and no other peer is touched; the new entry keeps the live
    // endpoint when none is desired (a peer that dials in: where it was last seen).
    void pair_key_swaps(const WgInterface& have, size_t releases, size_t claims) {
        auto& rel = phases_[kRelease];
        auto& cl = phases_[kClaim];
        std::map<std::string, size_t> removed;  // name -> index in rel
        for (size_t i = releases; i < rel.size(); ++i)
            if (auto* r = std::get_if<OpRemovePeer>(&rel[i]); r && !r->foreign && !r->name.empty()) removed.emplace(r->name, i);
        if (removed.empty()) return;
        std::vector<std::pair<size_t, Op>> moved;  // additions to place right after their removal
        for (size_t i = claims; i < cl.size();) {
            auto* a = std::get_if<OpAddPeer>(&cl[i]);
            auto it = a && !a->name.empty() ? removed.find(a->name) : removed.end();
            if (it == removed.end()) {
                ++i;
                continue;
            }
            auto& r = std::get<OpRemovePeer>(rel[it->second]);
            a->swapped_from = r.public_key;
            r.swapped_for = a->peer.public_key;
            const WgPeer& old = have.peers.at(r.public_key);
            if (!a->peer.endpoint && old.endpoint) a->peer.endpoint = old.endpoint;
            // The new entry claims what the old one releases: in the same set, right after it.
            // An addition that claims more stays with the claims (another peer may hold it now).
            if (!std::includes(old.allowed_ips.begin(), old.allowed_ips.end(), a->peer.allowed_ips.begin(), a->peer.allowed_ips.end())) {
                ++i;
                continue;
            }
            moved.emplace_back(it->second, std::move(cl[i]));
            cl.erase(cl.begin() + static_cast<std::ptrdiff_t>(i));
        }
        // From the last position back, so earlier positions stay valid.
        std::sort(moved.begin(), moved.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        for (auto& [at, op] : moved) rel.insert(rel.begin() + static_cast<std::ptrdiff_t>(at) + 1, std::move(op));
    }

    // Whether another live peer of the interface holds one of these prefixes now. The first few
    // questions scan the peers (a one-peer change asks once); after that an index pays off.
    bool held_by_other(const WgInterface& have_if, const std::vector<Prefix>& prefixes, const Key& self) {
        if (!held_built_ && ++held_scans_ > kScansBeforeIndex) {
            for (const auto& [k, p] : have_if.peers)
                for (const auto& a : p.allowed_ips) held_.emplace(a, k);
            held_built_ = true;
        }
        if (!held_built_) {
            for (const auto& [k, p] : have_if.peers) {
                if (k == self) continue;
                for (const auto& a : p.allowed_ips)
                    if (std::find(prefixes.begin(), prefixes.end(), a) != prefixes.end()) return true;
            }
            return false;
        }
        return std::any_of(prefixes.begin(), prefixes.end(), [&](const Prefix& p) {
            auto it = held_.find(p);
            return it != held_.end() && it->second != self;
        });
    }

    void diff_peer(const std::string& ifname, const WgPeer& want, const WgPeer& have, const WgInterface& have_if) {
        const model::PrefixSet &wa = want.allowed_ips, &ha = have.allowed_ips;
        const bool endpoint = want.endpoint && have.endpoint != want.endpoint;
        const bool ips = wa != ha;
        // Most peers of a large interface are unchanged: they cost the comparison, not a lookup
        // of their name.
        if (!endpoint && !ips && want.keepalive == have.keepalive) return;
        const std::string& name = labels_.peer_name(ifname, want.public_key);
        OpUpdatePeer u{.ifname = ifname, .public_key = want.public_key, .name = name};
        if (endpoint) {
            if (auto why = roamed(ifname, want))
                plan_.kept.push_back(fmt::format("peer {} on {}: endpoint {} (roamed from {}; {})",
                                                 name.empty() ? want.public_key.short_str() : name, ifname,
                                                 have.endpoint ? have.endpoint->str() : "(none)", want.endpoint->str(), why));
            else u.endpoint = want.endpoint, u.old_endpoint = have.endpoint;
        }
        if (want.keepalive != have.keepalive) u.keepalive = want.keepalive, u.old_keepalive = have.keepalive;
        if (ips) {
            u.added = minus(wa, ha);
            u.removed = minus(ha, wa);
        }
        if (ips && !u.removed.empty() && !u.added.empty() && held_by_other(have_if, u.added, want.public_key)) {
            // Two steps: release what goes (keeping what stays), then claim what comes, so a
            // prefix swapped between two peers is never held by both. Needed only when what this
            // peer gains is held by another peer now; otherwise one update does both.
            OpUpdatePeer rel{.ifname = ifname, .public_key = want.public_key, .name = name, .removed = u.removed};
            std::vector<Prefix> kept;
            std::set_intersection(wa.begin(), wa.end(), ha.begin(), ha.end(), std::back_inserter(kept));
            rel.allowed_ips = model::PrefixSet(std::move(kept));
            add(kRelease, std::move(rel));
            u.allowed_ips = wa;
            u.removed.clear();
            add(kClaim, std::move(u));
            return;
        }
        if (ips) u.allowed_ips = wa;
        if (!u.endpoint && !u.keepalive && !u.allowed_ips) return;
        // An update that frees prefixes goes with the releases (it claims only free ones), so
        // another peer can claim what it frees in the same plan. (The phase is decided before u
        // is moved from: argument evaluation order is unspecified.)
        const Phase phase = ips && !u.removed.empty() ? kRelease : kClaim;
        add(phase, std::move(u));
    }

    // The live endpoint differs from the desired one. The kernel and wireguard-go learn a peer's
    // endpoint from its authenticated packets (NAT rebinding, a laptop changing networks), so a
    // different live endpoint is where the peer was last seen. It is left alone, whatever the
    // handshake's age, when the desired endpoint is the one wg-fleet applied last time: only a
    // changed desired endpoint is set (a stale handshake says nothing about where the peer is).
    // A peer wg-fleet knew without an endpoint has a changed one too. With nothing recorded for
    // the peer (first run, state lost) the live session decides: a recent handshake keeps the
    // live endpoint, else the desired one is set. Returns why it is kept, or null.
    const char* roamed(const std::string& ifname, const WgPeer& want) const {
        if (auto e = owned_.endpoints.find(ifname); e != owned_.endpoints.end())
            if (auto k = e->second.find(want.public_key); k != e->second.end())
                return k->second == *want.endpoint ? "the desired endpoint is unchanged" : nullptr;
        if (auto p = owned_.peers.find(ifname); p != owned_.peers.end() && p->second.count(want.public_key)) return nullptr;
        auto hs = facts_.last_handshake.find(ifname);
        if (hs == facts_.last_handshake.end()) return nullptr;
        auto t = hs->second.find(want.public_key);
        bool alive = t != hs->second.end() && t->second > 0 && facts_.now - t->second < opts_.roaming_window;
        return alive ? "nothing recorded, and its session is alive" : nullptr;
    }

    void diff_routes(const HostState& desired, const HostState& live) {
        // One merge walk over both sets, ordered alike: each phase gets its routes in that order.
        auto l = live.routes.begin(), d = desired.routes.begin();
        while (l != live.routes.end() || d != desired.routes.end()) {
            if (d == desired.routes.end() || (l != live.routes.end() && *l < *d)) {
                if (!deleted_.count(l->dev)) add(kRouteDel, OpDelRoute{*l});
                ++l;
            } else if (l == live.routes.end() || *d < *l) {
                add(kRouteAdd, OpAddRoute{*d});
                ++d;
            } else {
                ++l;
                ++d;
            }
        }
    }

    // Rules go with the routes: stale ones out with the stale routes, new ones in once their
    // table's routes exist (a rule to an empty table would send traffic nowhere: unreachable).
    void diff_policy_rules(const HostState& desired, const HostState& live) {
        for (const auto& r : live.rules)
            if (!desired.rules.count(r)) add(kRouteDel, OpDelPolicyRule{r});
        for (const auto& r : desired.rules)
            if (!live.rules.count(r)) add(kRouteAdd, OpAddPolicyRule{r});
    }

    // Sysctls of wg-fleet's own interfaces go with the link; the others once the routes exist,
    // in an order of their own: accept_ra is raised before forwarding is turned on (turning it on
    // purges the RA-learned default routes of interfaces whose accept_ra is not 2), and
    // forwarding is restored before accept_ra is lowered again.
    void diff_sysctls(const HostState& desired, const HostState& live) {
        std::vector<Op> raise, set, restore, lower;
        for (const auto& [k, v] : desired.sysctls) {
            auto it = live.sysctls.find(k);
            if (it != live.sysctls.end() && it->second == v) continue;
            OpSetSysctl op{k, v, it == live.sysctls.end() ? "" : it->second};
            if (desired.interfaces.count(conf_interface(k))) add(kLink, std::move(op));
            else (is_accept_ra_key(k) ? raise : set).emplace_back(std::move(op));
        }
        // What wg-fleet changed and no longer needs goes back to what it found, unless someone
        // changed it since (then it is theirs) or it went away with its interface.
        for (const auto& [k, rec] : owned_.sysctls) {
            if (desired.sysctls.count(k) || deleted_.count(conf_interface(k))) continue;
            auto it = live.sysctls.find(k);
            if (it == live.sysctls.end() || it->second != rec.value || it->second == rec.original) continue;
            (is_accept_ra_key(k) ? lower : restore).emplace_back(OpSetSysctl{k, rec.original, it->second, true});
        }
        for (auto* group : {&raise, &set, &restore, &lower})
            for (auto& op : *group) add(kSysctl, std::move(op));
    }

    // Both maps are ordered by id: one walk over the two instead of a lookup of every id (10,000
    // forwards are 10,000 entries on each side). Each phase lists its ops in the order of ids.
    void diff_rules(const HostState& desired, const HostState& live) {
        auto d = desired.firewall.begin();
        auto l = live.firewall.begin();
        while (d != desired.firewall.end() || l != live.firewall.end()) {
            if (l == live.firewall.end() || (d != desired.firewall.end() && d->first < l->first)) {
                add(kRuleAdd, OpAddRule{d->second});
                ++d;
            } else if (d == desired.firewall.end() || l->first < d->first) {
                add(kRuleDel, OpDelRule{l->first, l->second});
                ++l;
            } else {
                if (d->second != l->second) {
                    add(kRuleDel, OpDelRule{l->first, l->second});
                    add(kRuleAdd, OpAddRule{d->second});
                }
                ++d;
                ++l;
            }
        }
        for (const auto& dm : live.firewall_damage) add(kRuleDel, OpRepairFirewall{dm});
    }

    // Ours by the mark alone: a marked rule that is not desired, or not as built, goes.
    void diff_foreign_rules(const HostState& desired, const HostState& live) {
        for (const auto& [key, r] : live.foreign_rules) {
            auto it = desired.foreign_rules.find(key);
            if (it == desired.foreign_rules.end() || it->second != r) add(kRuleDel, OpDelForeignRule{r});
        }
        for (const auto& [key, r] : desired.foreign_rules) {
            auto it = live.foreign_rules.find(key);
            if (it == live.foreign_rules.end() || it->second != r) add(kRuleAdd, OpAddForeignRule{r});
        }
    }

    void diff_files(const HostState& desired, const HostState& live) {
        for (const auto& [path, f] : desired.files) {
            if (auto c = facts_.foreign_files.find(path); c != facts_.foreign_files.end()) {
                plan_.conflicts.push_back(
                    c->second.empty() ? fmt::format("! conflict: {} exists and was not written by wg-fleet; left as is", path)
                                      : fmt::format("! conflict: {} is {}, not a file wg-fleet wrote; left as is", path, c->second));
                continue;
            }
            auto it = live.files.find(path);
            if (it == live.files.end()) add(kFiles, OpWriteFile{.file = f});
            else if (it->second != f)
                add(kFiles, OpWriteFile{.file = f,
                                        .exists = true,
                                        .changed_lines = changed_lines(it->second.content, f.content),
                                        .old_content = it->second.content});
        }
        for (const auto& [path, f] : live.files)
            if (!desired.files.count(path) && owned_.files.count(path) && model::has_file_marker(f.content))
                add(kFiles, OpRemoveFile{path});
        diff_reload();
    }

    // One reload after the files of its directory change, or when a failed run left it owed:
    // with the command configured now, or for a directory no longer configured (its files are
    // being removed), with the command recorded when they were written.
    void diff_reload() {
        auto reload_if_due = [&](const std::string& dir, const std::string& command) {
            bool due = owned_.reloads.count(dir) > 0;
            for (const auto& op : phases_[kFiles]) {
                const auto* w = std::get_if<OpWriteFile>(&op);
                const auto* r = std::get_if<OpRemoveFile>(&op);
                if (w || r) due |= path_within(w ? w->file.path : r->path, dir);
            }
            if (due) add(kReload, OpReload{.command = command, .dir = dir});
        };
        if (labels_.reload) reload_if_due(labels_.reload->dir, labels_.reload->command);
        for (const auto& [dir, command] : owned_.reload_commands)
            if (!labels_.reload || labels_.reload->dir != dir) reload_if_due(dir, command);
    }

    static inline const std::set<Key> kNoKeys{};
    const model::Labels& labels_;
    const Ownership& owned_;
    const LiveFacts& facts_;
    const DiffOptions& opts_;
    Plan plan_;
    std::vector<Op> phases_[kPhases];
    std::set<std::string> deleted_;
    std::set<uint16_t> freed_ports_;  // the listen ports of the devices this plan deletes
    std::map<Prefix, Key> held_;      // live prefix -> peer, built on first need per interface
    bool held_built_ = false;
    size_t held_scans_ = 0;
    static constexpr size_t kScansBeforeIndex = 4;
};

}  // namespace

Plan diff(const HostState& desired, const model::Labels& labels, const HostState& live, const Ownership& owned, const LiveFacts& facts,
          const DiffOptions& opts) {
    return Differ(labels, owned, facts, opts).run(desired, live);
}

Ownership ownership_after(const HostState& desired, const model::Labels& labels) {
    Ownership o;
    for (const auto& [name, w] : desired.interfaces) {
        o.interfaces.insert(name);
        auto& keys = o.peers[name];
        auto& eps = o.endpoints[name];
        const auto& named = labels.of(name).peer_names;
        for (const auto& [k, p] : w.peers) {
            keys.insert(k);
            if (p.endpoint) eps.emplace(k, *p.endpoint);
            if (auto n = named.find(k); n != named.end() && !n->second.empty()) o.names[name].emplace(k, n->second);
        }
    }
    for (const auto& [path, f] : desired.files) o.files.insert(path);
    if (labels.reload) o.reload_commands.emplace(labels.reload->dir, labels.reload->command);
    return o;
}

std::string summarize(const Plan& plan) {
    size_t add = 0, change = 0, remove = 0, peers = 0;
    std::set<std::string> devices;
    for (const auto& op : plan.ops) {
        switch (mark(op)) {
            case '+': ++add; break;
            case '-': ++remove; break;
            default: ++change; break;
        }
        switch (disruption(op)) {
            case Disruption::peer_session: ++peers; break;
            case Disruption::all_sessions: devices.insert(interface_of(op)); break;
            default: break;
        }
    }
    const size_t n = plan.conflicts.size();
    const std::string conflicts = fmt::format(
        "{} conflict{} (a managed path wg-fleet did not write: left as is; apply exits 1 until it is resolved)", n, n == 1 ? "" : "s");
    if (plan.ops.empty()) return n ? "Nothing to apply, but " + conflicts + "." : "No changes: the node matches the fleet.";
    std::string s = fmt::format("Plan: {} to add, {} to change, {} to remove", add, change, remove);
    if (!devices.empty()) s += fmt::format("; resets every session on {} device{}", devices.size(), devices.size() == 1 ? "" : "s");
    if (peers) s += fmt::format("; disrupts {} peer session{}", peers, peers == 1 ? "" : "s");
    if (devices.empty() && !peers) s += "; disrupts no session";
    if (n) s += "; " + conflicts;
    return s + ".";
}

}  // namespace wgf::plan
