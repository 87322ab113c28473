#include "plan/render.hpp"
#include "plan/ops.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "plan/forward_target.hpp"
#include "plan/validate.hpp"

namespace wgf::plan {
namespace {

using model::Fleet;
using model::FleetStyle;
using model::IpAddr;
using model::Member;
using model::Prefix;
using model::Role;
using model::WgInterface;
using model::WgPeer;

Prefix host_prefix(const IpAddr& a) { return Prefix::host(a); }

// Whether `node` is a peer of clan fleet f that sends all its traffic through an exit node.
bool uses_exit_node(const Fleet& f, const std::string& node) {
    if (f.style != FleetStyle::clan || f.controllers.count(node)) return false;
    auto it = f.peers.find(node);
    return it != f.peers.end() && model::exit_node_of(f, it->second) != nullptr;
}

class InterfaceBuilder {
public:
    InterfaceBuilder(const Fleetwide& fw, const std::string& fleet, const std::string& node)
        : fw_(fw), name_(fleet), f_(fw.cfg.fleets.at(fleet)), fp_(fw.plan.fleets.at(fleet)), node_(node) {}

    // The interface, and its labels into `labels`.
    WgInterface build(Role role, model::InterfaceLabels& labels) {
        WgInterface w{.name = f_.interface, .listen_port = listen_port(f_, role, node_), .mtu = f_.mtu, .up = true};
        labels_ = &labels;
        labels.fleet = name_;
        labels.private_key_file = private_key_path(fw_.cfg, name_);
        if (auto it = fp_.nodes.find(node_); it != fp_.nodes.end()) w.addresses = model::AddressSet(it->second.addresses);
        added_.reserve(f_.controllers.size() + f_.peers.size() + 1);  // and a subnet fleet's server
        if (f_.style == FleetStyle::clan) clan_peers(role);
        else subnet_peers(role);
        insert_peers(w);
        // Marked only once the exit node is a peer of the device (it may wait for its key).
        if (role == Role::peer && uses_exit_node(f_, node_))
            for (const auto& [k, p] : w.peers)
                if (std::any_of(p.allowed_ips.begin(), p.allowed_ips.end(), [](const Prefix& a) { return a.len == 0; }))
                    w.fwmark = model::kExitMark;
        return w;
    }

private:
    struct Added {
        WgPeer peer;
        std::string name;  // copied while the member's entry is at hand, not later in key order
    };

    void add(const std::string& name, const std::optional<model::Key>& key, const std::optional<model::Endpoint>& ep,
             std::vector<Prefix> allowed) {
        if (!key) {
            labels_->pending.push_back(name);
            return;
        }
        added_.push_back({.peer = WgPeer{.public_key = *key,
                                         .endpoint = ep ? std::optional(ep->with_default_port(f_.port)) : std::nullopt,
                                         .allowed_ips = model::PrefixSet(std::move(allowed)),
                                         .keepalive = f_.keepalive},
                          .name = name});
    }

    // Keys follow no order the members come in, and inserting n of them one by one into a map
    // costs n searches of the tree; sorted first, each is appended at the end. Among members
    // sharing a key the one added first keeps it, as one emplace after another would.
    void insert_peers(WgInterface& w) {
        // Keys order as their bytes do: the first eight as a big-endian number decide almost
        // every comparison without a call to memcmp.
        auto head = [](const model::Key& k) {
            uint64_t v = 0;
            for (int i = 0; i < 8; ++i) v = (v << 8) | k.bytes[static_cast<size_t>(i)];
            return v;
        };
        std::vector<std::pair<uint64_t, size_t>> order;  // (head of the key, index in added_)
        order.reserve(added_.size());
        for (size_t i = 0; i < added_.size(); ++i) order.emplace_back(head(added_[i].peer.public_key), i);
        std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
            if (a.first != b.first) return a.first < b.first;
            const model::Key &ka = added_[a.second].peer.public_key, &kb = added_[b.second].peer.public_key;
            return ka != kb ? ka < kb : a.second < b.second;
        });
        for (const auto& [h, i] : order) {
            Added& a = added_[i];
            const model::Key key = a.peer.public_key;
            w.peers.emplace_hint(w.peers.end(), key, std::move(a.peer));
            labels_->peer_names.emplace_hint(labels_->peer_names.end(), key, std::move(a.name));
        }
        added_.clear();
    }

    void add_ipv4(std::vector<Prefix>& v, const std::string& member) const {
        if (auto it = fp_.ipv4.find(member); it != fp_.ipv4.end()) v.push_back(host_prefix(it->second));
    }

    // Positions in fp_.nodes and fp_.ipv4 of a loop over peers in name order.
    struct InStep {
        std::map<std::string, NodeAddrs>::const_iterator node;
        std::map<std::string, IpAddr>::const_iterator v4;
    };
    InStep in_step() const { return {.node = fp_.nodes.begin(), .v4 = fp_.ipv4.begin()}; }

    std::vector<Prefix> peer_addresses_128(const std::string& peer, InStep& at) const {
        std::vector<Prefix> v;
        if (const NodeAddrs* na = find_in_step(fp_.nodes, at.node, peer))
            for (const auto& a : na->addresses)
                if (a.addr.is_v6()) v.push_back(host_prefix(a.addr));
        if (const IpAddr* a = find_in_step(fp_.ipv4, at.v4, peer)) v.push_back(host_prefix(*a));
        return v;
    }

    // Routes of peers other than `except`, which in a hub reach us through a controller.
    std::vector<Prefix> other_peer_routes(const std::string& except) const {
        std::vector<Prefix> v;
        if (auto it = fw_.peer_routes.find(name_); it != fw_.peer_routes.end())
            for (const auto& [p, owner] : it->second)
                if (owner != except) v.push_back(p);
        return v;
    }

    // Clan style. IPv6 addresses need no relaying: a peer holds an address in every controller's
    // /56 and every controller holds every peer, so each side answers through the controller
    // whose /56 the other used. IPv4 addresses and announced routes have one prefix per member,
    // and WireGuard accepts a packet only from the entry its source is routed to, so in a hub
    // each of them has one home: a controller's own, a peer's at its designated controller.
    // A peer sends all of them to its designated controller, which sends them on to their home
    // controller, which delivers them: both directions take the same controllers, so every
    // node sees each source arrive from the entry it routes that source to. IPv6 routes of a
    // peer stay on every controller's entry for it (its answers to a peer's address in /56 X
    // go through X); IPv6 routes of a controller stay on that controller's entry everywhere.
    // In a mesh every pair is direct and nothing is relayed.
    void clan_peers(Role role) {
        bool hub = f_.topology == model::Topology::hub;
        if (role == Role::controller) {
            for (const auto& [c, m] : f_.controllers) {
                if (c == node_) continue;
                std::vector<Prefix> allowed{fp_.nets.at(c)};
                add_ipv4(allowed, c);
                allowed.insert(allowed.end(), m.routes.begin(), m.routes.end());
                if (hub)
                    if (const auto* h = homed_at(c)) allowed.insert(allowed.end(), h->begin(), h->end());
                add(c, m.public_key, m.endpoint, std::move(allowed));
            }
            // The plan gives every peer a suffix, so the two maps walk in step.
            auto suffix = fp_.suffixes.begin();
            auto v4 = fp_.ipv4.begin();
            for (const auto& [p, m] : f_.peers) {
                uint64_t s = (suffix++)->second;
                if (f_.controllers.count(p)) continue;
                std::vector<Prefix> allowed;
                allowed.reserve(fp_.nets.size() + 1 + m.routes.size());
                for (const auto& [c, net] : fp_.nets) allowed.push_back(Prefix{with_suffix(net.addr, s), 96});
                bool home = !hub || home_of(m) == node_;
                if (home)
                    if (const IpAddr* a = find_in_step(fp_.ipv4, v4, p)) allowed.push_back(host_prefix(*a));
                for (const auto& r : m.routes)
                    if (home || r.addr.is_v6()) allowed.push_back(r);
                add(p, m.public_key, m.endpoint, std::move(allowed));
            }
            return;
        }
        const Member& me = f_.peers.at(node_);
        const std::string home = home_of(me);
        const std::string* exit = model::exit_node_of(f_, me);
        for (const auto& [c, m] : f_.controllers) {
            std::vector<Prefix> allowed{fp_.nets.at(c)};
            // Everything else: the exit node sends it on to the rest of the world.
            if (exit && *exit == c) {
                if (fp_.ipv4.count(node_)) allowed.push_back(Prefix{IpAddr::v4(0), 0});
                allowed.push_back(Prefix{IpAddr::v6({}), 0});
            }
            if (c == home) {
                add_ipv4(allowed, c);
                allowed.insert(allowed.end(), m.routes.begin(), m.routes.end());
                if (f_.ipv4) allowed.push_back(*f_.ipv4);
                if (hub) {
                    auto r = other_peer_routes(node_);
                    allowed.insert(allowed.end(), r.begin(), r.end());
                    for (const auto& [o, om] : f_.controllers)
                        if (o != c)
                            for (const auto& r4 : om.routes)
                                if (r4.addr.is_v4()) allowed.push_back(r4);
                }
            } else if (hub) {
                // Its IPv4 address lies in the fleet's pool, which goes to the home controller.
                for (const auto& r : m.routes)
                    if (r.addr.is_v6()) allowed.push_back(r);
            } else {
                add_ipv4(allowed, c);
                allowed.insert(allowed.end(), m.routes.begin(), m.routes.end());
            }
            add(c, m.public_key, m.endpoint, std::move(allowed));
        }
        if (!hub) mesh_peers();
    }

    const std::string& home_of(const Member& peer) const { return home_controller(f_, peer); }

    const std::vector<Prefix>* homed_at(const std::string& controller) const {
        auto f = fw_.homed_v4.find(name_);
        if (f == fw_.homed_v4.end()) return nullptr;
        auto c = f->second.find(controller);
        return c == f->second.end() ? nullptr : &c->second;
    }

    void subnet_peers(Role role) {
        if (role == Role::server) {
            InStep at = in_step();
            for (const auto& [p, m] : f_.peers) {
                if (p == f_.server) continue;
                auto allowed = peer_addresses_128(p, at);
                allowed.insert(allowed.end(), m.routes.begin(), m.routes.end());
                add(p, m.public_key, m.endpoint, std::move(allowed));
            }
            return;
        }
        bool mesh = f_.topology == model::Topology::mesh;
        std::vector<Prefix> allowed{*f_.subnet};
        if (f_.ipv4) allowed.push_back(*f_.ipv4);
        if (!mesh) {
            auto r = other_peer_routes(node_);
            allowed.insert(allowed.end(), r.begin(), r.end());
        }
        std::optional<model::Endpoint> ep;
        if (f_.external_ip) ep = model::Endpoint{*f_.external_ip, f_.port};
        add(f_.server, f_.server_public_key, ep, std::move(allowed));
        if (mesh) mesh_peers();
    }

    void mesh_peers() {
        InStep at = in_step();
        for (const auto& [p, m] : f_.peers) {
            if (p == node_ || f_.controllers.count(p)) continue;
            auto allowed = peer_addresses_128(p, at);
            allowed.insert(allowed.end(), m.routes.begin(), m.routes.end());
            add(p, m.public_key, m.endpoint, std::move(allowed));
        }
    }

    const Fleetwide& fw_;
    const std::string& name_;
    const Fleet& f_;
    const FleetPlan& fp_;
    const std::string& node_;
    model::InterfaceLabels* labels_ = nullptr;
    std::vector<Added> added_;  // peers with a key, in the order they were added
};

WgInterface render_interface(const Fleetwide& fw, const std::string& fleet, const std::string& node, model::InterfaceLabels& labels) {
    auto it = fw.index.find(node);
    Role role = Role::peer;
    if (it != fw.index.end())
        for (const auto& mb : it->second)
            if (mb.fleet == fleet) role = mb.role;
    return InterfaceBuilder(fw, fleet, node).build(role, labels);
}

bool covered_by(const Prefix& p, const std::vector<Prefix>& connected) {
    return std::any_of(connected.begin(), connected.end(),
                       [&](const Prefix& c) { return c.addr.family == p.addr.family && c.len <= p.len && c.contains(p.addr); });
}

std::string yaml_quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

namespace {

// How far two configurations agree on what Fleetwide derives from names and addressing: one
// walk over both, peers in step.
struct Sameness {
    bool plan = true;   // everything plan_fleet and index_nodes read
    bool hosts = true;  // and the hosts files: the domain, every peer's controller: and host name
};

// A field added to Member or Fleet must be placed here: does the address plan, the node index or
// the hosts file depend on it? (The sizes are those of x86-64 with libstdc++.) Fleet's headscale:
// settings do not: its nodes come in as members. Neither do exit_node (a member's and the fleet's):
// it changes peers' allowed IPs and rules, which every render derives anew. Nor key_max_age: only
// check reads it.
static_assert(sizeof(void*) != 8 || sizeof(model::Member) == 288, "a new Member field: does compare() below need it?");
static_assert(sizeof(void*) != 8 || sizeof(model::Fleet) == 512, "a new Fleet field: does compare() below need it?");

Sameness compare(const model::Config& a, const model::Config& b) {
    Sameness s;
    s.hosts = a.domain == b.domain;
    if (a.fleets.size() != b.fleets.size()) return {.plan = false, .hosts = false};
    for (auto x = a.fleets.begin(), y = b.fleets.begin(); x != a.fleets.end(); ++x, ++y) {
        const Fleet &f = x->second, &g = y->second;
        if (x->first != y->first || f.style != g.style || f.ipv4 != g.ipv4 || f.subnet != g.subnet || f.ip6 != g.ip6 ||
            f.server != g.server || f.controllers.size() != g.controllers.size() || f.peers.size() != g.peers.size())
            return {.plan = false, .hosts = false};
        for (auto c = f.controllers.begin(), d = g.controllers.begin(); c != f.controllers.end(); ++c, ++d)
            if (c->first != d->first || c->second.id != d->second.id || c->second.ipv4 != d->second.ipv4)
                return {.plan = false, .hosts = false};
        for (auto p = f.peers.begin(), q = g.peers.begin(); p != f.peers.end(); ++p, ++q) {
            if (p->first != q->first || p->second.suffix != q->second.suffix || p->second.ipv4 != q->second.ipv4)
                return {.plan = false, .hosts = false};
            // A peer's hosts line is its address in its designated controller's /56; an enrolled
            // client's is under its host name, if it has one.
            s.hosts = s.hosts && p->second.controller == q->second.controller && p->second.dynamic == q->second.dynamic &&
                      p->second.host_name == q->second.host_name;
        }
    }
    return s;
}

}  // namespace

std::string HostsMemo::get(const std::string& node, const std::function<std::string()>& make) {
    {
        std::lock_guard lock(mutex_);
        if (last_ && last_->first == node) return last_->second;
    }
    // Rendered unlocked: two threads asking at once both render, and the results are equal.
    std::string content = make();
    std::lock_guard lock(mutex_);
    last_.emplace(node, content);
    return content;
}

Fleetwide::Shared Fleetwide::share(const model::Config& c, const Fleetwide* previous) {
    const Sameness same = previous ? compare(previous->cfg, c) : Sameness{.plan = false, .hosts = false};
    if (!same.plan)
        return {.basis = std::make_shared<const FleetBasis>(FleetBasis{.plan = plan_addresses(c), .index = index_nodes(c)}),
                .hosts = std::make_shared<HostsMemo>(),
                .kept = false};
    return {.basis = previous->basis_, .hosts = same.hosts ? previous->hosts_ : std::make_shared<HostsMemo>(), .kept = true};
}

Fleetwide::Fleetwide(const model::Config& c, const Fleetwide* previous) : Fleetwide(c, share(c, previous)) {}

Fleetwide::Fleetwide(const model::Config& c, Shared shared)
    : cfg(c),
      basis_(std::move(shared.basis)),
      hosts_(std::move(shared.hosts)),
      plan(basis_->plan),
      index(basis_->index),
      reused_plan_(shared.kept) {
    // One walk over each fleet's peers for both.
    for (const auto& [name, f] : c.fleets) {
        auto& v = peer_routes[name];
        const bool homing = f.style == FleetStyle::clan && !f.controllers.empty();
        const FleetPlan& fp = plan.fleets.at(name);
        auto* homed = homing ? &homed_v4[name] : nullptr;
        auto v4 = fp.ipv4.begin();
        for (const auto& [n, m] : f.peers) {
            for (const auto& r : m.routes) v.emplace_back(r, n);
            if (!homed || f.controllers.count(n)) continue;
            auto& hv = (*homed)[home_controller(f, m)];
            if (const IpAddr* a = find_in_step(fp.ipv4, v4, n)) hv.push_back(Prefix::host(*a));
            for (const auto& r : m.routes)
                if (r.addr.is_v4()) hv.push_back(r);
        }
    }
}

std::string Fleetwide::hosts_file(const std::string& node) const {
    return hosts_->get(node, [&] { return render_hosts_file(render_hosts_entries(*this, node)); });
}

std::string private_key_path(const model::Config& cfg, const std::string& fleet) { return cfg.state_dir + "/" + fleet + ".key"; }

std::string normal_path(const std::string& path) {
    std::string n = std::filesystem::path(path).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    return n;
}

bool path_within(const std::string& path, const std::string& dir) {
    const std::string p = normal_path(path), d = normal_path(dir);
    return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && (d == "/" || p[d.size()] == '/'));
}

std::string published_key_path(const std::string& keys_dir, const std::string& fleet, const std::string& node) {
    return keys_dir + "/" + fleet + "/" + node + ".pub";
}

namespace {

// The sysctls forwarding needs: IPv4, IPv6, or both.
struct Forwarding {
    bool v4 = false, v6 = false;

    void route(const Prefix& p) { (p.addr.is_v4() ? v4 : v6) = true; }
};

// Each interface of the node with its labels.
void render_wireguard(const Fleetwide& fw, const std::string& node, const std::vector<Membership>& fleets, Desired& out) {
    for (const auto& mb : fleets) {
        const std::string& ifname = fw.cfg.fleets.at(mb.fleet).interface;
        out.state.interfaces.emplace(ifname, InterfaceBuilder(fw, mb.fleet, node).build(mb.role, out.labels.interfaces[ifname]));
    }
}

// A member using an exit node: the default routes through w in a table of their own, and the
// rules that send to it every packet but the tunnel's own (see kExitTable), per family it has.
void render_exit_routes(const WgInterface& w, model::HostState& hs) {
    for (const auto& [k, p] : w.peers)
        for (const auto& a : p.allowed_ips) {
            if (a.len != 0) continue;
            hs.routes.insert(model::Route{.dst = a, .dev = w.name, .table = model::kExitTable});
            const uint8_t family = a.addr.is_v4() ? 4 : 6;
            hs.rules.insert(model::PolicyRule{
                .family = family, .priority = model::kExitSuppressPriority, .table = model::kMainTable, .suppress_prefixlength = 0});
            hs.rules.insert(model::PolicyRule{.family = family,
                                              .priority = model::kExitMarkPriority,
                                              .table = model::kExitTable,
                                              .fwmark = model::kExitMark,
                                              .invert = true});
            // The answers to the tunnel's marked packets pass strict reverse-path filtering only
            // when the mark is considered (wg-quick sets it too).
            if (family == 4) hs.sysctls["net/ipv4/conf/all/src_valid_mark"] = "1";
        }
}

// A kernel route for every allowed IP outside the interface's own subnets.
void render_routes(const Fleetwide& fw, const std::string& node, const std::vector<Membership>& fleets, model::HostState& hs) {
    for (const auto& mb : fleets) {
        const Fleet& f = fw.cfg.fleets.at(mb.fleet);
        const WgInterface& w = hs.interfaces.at(f.interface);
        std::vector<Prefix> connected;
        for (const auto& a : w.addresses) connected.push_back(a.masked());
        // A clan peer holds an IPv6 address in each controller's /56, and an answer comes back
        // through the controller whose /56 the source lies in. For a routed prefix outside the
        // fleet, the kernel would pick any of them; the address in its designated controller's
        // /56 is the one every member's answer is routed back through correctly (render of the
        // controllers above), so routes to such prefixes prefer it.
        std::optional<IpAddr> v6_src;
        if (mb.role == Role::peer && f.style == FleetStyle::clan && f.controllers.size() > 1)
            v6_src = primary_address(f, fw.plan.fleets.at(mb.fleet), node);
        for (const auto& [k, p] : w.peers)
            for (const auto& a : p.allowed_ips) {
                if (a.len == 0) continue;  // an exit node's: below
                if (!covered_by(a, connected))
                    hs.routes.insert(model::Route{.dst = a, .dev = w.name, .src = a.addr.is_v6() ? v6_src : std::nullopt});
            }
        if (w.fwmark) render_exit_routes(w, hs);
    }
}

// The fleet a forward's target is reached through: the one it names, or the one node and target
// share (validate() made sure there is exactly one).
std::optional<std::string> forward_fleet(const Fleetwide& fw, const model::Forward& fwd, const std::vector<Membership>& fleets) {
    if (fwd.fleet) return fwd.fleet;
    if (fwd.to_addr) {
        auto reaching = fleets_reaching(fw.cfg, fw.plan, fleets, fwd.node, *fwd.to_addr);
        if (reaching.empty()) return std::nullopt;
        return reaching.front();
    }
    for (const auto& mb : fleets) {
        const Fleet& f = fw.cfg.fleets.at(mb.fleet);
        if (find_member(f, fwd.to) || (f.style == FleetStyle::subnet && f.server == fwd.to)) return mb.fleet;
    }
    return std::nullopt;
}

// A controller that is the exit node of peers of `fleet`: each of their addresses may leave
// through any interface and is masqueraded when it leaves the fleet (IPv4, and NAT66 for the
// fleet's ULA addresses), never when it goes on to another member.
void render_exit_rules(const Fleetwide& fw, const std::string& node, const std::string& fleet, const std::vector<std::string>& fleet_ifs,
                       Forwarding& need, model::HostState& hs) {
    const Fleet& f = fw.cfg.fleets.at(fleet);
    const FleetPlan& fp = fw.plan.fleets.at(fleet);
    auto allow = [&](const std::string& peer, const IpAddr& a) {
        const std::string tail = peer + "-" + a.str();
        hs.firewall.emplace("exit-fwd-" + tail,
                            model::FwRule{.id = "exit-fwd-" + tail, .kind = model::FwKind::exit_forward, .iif = f.interface, .from = a});
        hs.firewall.emplace(
            "exit-masq-" + tail,
            model::FwRule{.id = "exit-masq-" + tail, .kind = model::FwKind::exit_masquerade, .from = a, .not_oif = fleet_ifs});
        (a.is_v4() ? need.v4 : need.v6) = true;
    };
    for (const auto& [p, m] : f.peers) {
        const std::string* e = model::exit_node_of(f, m);
        if (!e || *e != node || f.controllers.count(p)) continue;
        if (auto v4 = fp.ipv4.find(p); v4 != fp.ipv4.end()) allow(p, v4->second);
        if (auto na = fp.nodes.find(p); na != fp.nodes.end())
            for (const auto& a : na->second.addresses)
                if (a.addr.is_v6()) allow(p, a.addr);
    }
}

// Per fleet: forwarding through the interface for a router and for a member with routes, the
// listen port open; per forward of the node: its DNAT rules and the masquerade of its fleet.
// Returns the forwarding they need.
Forwarding render_firewall(const Fleetwide& fw, const std::string& node, const std::vector<Membership>& fleets, model::HostState& hs) {
    Forwarding need;
    auto rule = [&](model::FwRule r) { hs.firewall.emplace(r.id, std::move(r)); };
    std::vector<std::string> fleet_ifs;  // sorted: interfaces is a map
    for (const auto& [name, w] : hs.interfaces) fleet_ifs.push_back(name);
    for (const auto& mb : fleets) {
        const Fleet& f = fw.cfg.fleets.at(mb.fleet);
        const WgInterface& w = hs.interfaces.at(f.interface);
        if (mb.role != Role::peer) {
            // A controller relays between members: their addresses and every prefix they route.
            need.v6 = true;
            need.v4 = need.v4 || f.ipv4.has_value();
            for (const auto& [n, m] : f.controllers)
                for (const auto& r : m.routes) need.route(r);
            for (const auto& [r, owner] : fw.peer_routes.at(mb.fleet)) need.route(r);
            rule({.id = "forward-" + mb.fleet, .kind = model::FwKind::forward, .iif = w.name, .oif = w.name});
            if (f.style == FleetStyle::clan) render_exit_rules(fw, node, mb.fleet, fleet_ifs, need, hs);
        }
        if (const Member* me = find_member(f, node); me && !me->routes.empty()) {
            for (const auto& r : me->routes) need.route(r);
            rule({.id = "route-" + mb.fleet, .kind = model::FwKind::forward, .iif = w.name});
        }
        if (w.listen_port) rule({.id = "accept-" + mb.fleet, .kind = model::FwKind::accept_udp, .port = *w.listen_port});
    }
    for (const auto& fwd : fw.cfg.forwards) {
        if (fwd.node != node) continue;
        auto fleet = forward_fleet(fw, fwd, fleets);
        if (!fleet) continue;
        const Fleet& f = fw.cfg.fleets.at(*fleet);
        const FleetPlan& fp = fw.plan.fleets.at(*fleet);
        // prerouting: the output interface is not known yet, so the rule names none.
        auto dnat = [&](const std::string& suffix, const IpAddr& to) {
            rule({.id = "dnat-" + fwd.name + suffix,
                  .kind = model::FwKind::dnat,
                  .proto = fwd.proto,
                  .port = fwd.port,
                  .to = to,
                  .to_port = fwd.to_port});
        };
        if (fwd.to_addr) {
            // An address of one family: only clients of that family can be translated to it.
            dnat(fwd.to_addr->is_v4() ? "-v4" : "-v6", *fwd.to_addr);
            (fwd.to_addr->is_v4() ? need.v4 : need.v6) = true;
        } else {
            if (auto v4 = fp.ipv4.find(fwd.to); v4 != fp.ipv4.end()) {
                dnat("-v4", v4->second);
                need.v4 = true;
            }
            if (auto v6 = primary_address(f, fp, fwd.to)) {
                dnat("-v6", *v6);
                need.v6 = true;
            }
        }
        rule({.id = "masquerade-" + *fleet, .kind = model::FwKind::masquerade, .oif = f.interface});
    }
    return need;
}

void render_sysctls(const Forwarding& need, model::HostState& hs) {
    if (need.v6) hs.sysctls["net/ipv6/conf/all/forwarding"] = "1";
    if (need.v4) hs.sysctls["net/ipv4/ip_forward"] = "1";
    // Without promote_secondaries, deleting an interface's primary IPv4 address deletes every
    // secondary address of its subnet with it: one that stays desired would vanish.
    for (const auto& [name, w] : hs.interfaces)
        if (std::any_of(w.addresses.begin(), w.addresses.end(), [](const Prefix& a) { return a.addr.is_v4(); }))
            hs.sysctls["net/ipv4/conf/" + name + "/promote_secondaries"] = "1";
}

// The hosts file (for a node in a fleet) and the node's HTTP route files.
void render_files(const Fleetwide& fw, const std::string& node, model::HostState& hs) {
    auto file = [&](const std::string& path, std::string content) {
        std::string p = normal_path(path);
        hs.files.emplace(p, model::ManagedFile{.path = p, .content = std::move(content), .mode = 0644});
    };
    if (!hs.interfaces.empty()) file(fw.cfg.hosts_file, fw.hosts_file(node));
    for (const auto& r : fw.cfg.http_routes) {
        if (r.node != node) continue;
        if (auto target = resolve_route_target(fw, r))
            file(http_route_file(fw.cfg, r),
                 fw.cfg.http_server == model::HttpServer::caddy ? render_caddy_route(r, *target) : render_traefik_route(r, *target));
    }
}

}  // namespace

Desired render_host(const Fleetwide& fw, const std::string& node, const RenderOptions& opts) {
    Desired out;
    auto it = fw.index.find(node);
    if (it == fw.index.end()) return out;
    render_wireguard(fw, node, it->second, out);
    render_routes(fw, node, it->second, out.state);
    render_sysctls(render_firewall(fw, node, it->second, out.state), out.state);
    out.labels.foreign_accept = fw.cfg.firewall.foreign_accept;
    if (opts.files) {
        render_files(fw, node, out.state);
        if (fw.cfg.http_server == model::HttpServer::caddy)
            out.labels.reload = model::FileReload{.dir = normal_path(fw.cfg.http_routes_dir), .command = fw.cfg.caddy_reload};
    }
    return out;
}

std::vector<HostsEntry> render_hosts_entries(const Fleetwide& fw, const std::string& node) {
    std::vector<HostsEntry> out;
    auto add_fleet = [&](const std::string& fleet) {
        const Fleet& f = fw.cfg.fleets.at(fleet);
        const FleetPlan& fp = fw.plan.fleets.at(fleet);
        std::string tail = "." + fleet + (fw.cfg.domain ? "." + *fw.cfg.domain : "");
        out.reserve(out.size() + fp.nodes.size());
        auto peer = f.peers.begin();
        for (const auto& [n, na] : fp.nodes) {
            const model::Member* m = find_in_step(f.peers, peer, n);
            if (m && m->dynamic && !m->host_name) continue;  // an enrolled client is listed by its host name only
            if (auto a = primary_address(f, fp, n, na, m)) out.push_back({*a, (m && m->dynamic ? *m->host_name : n) + tail});
        }
    };
    if (node.empty()) {
        for (const auto& [name, f] : fw.cfg.fleets) add_fleet(name);
    } else if (auto it = fw.index.find(node); it != fw.index.end()) {
        for (const auto& mb : it->second) add_fleet(mb.fleet);
    }
    return out;
}

std::string render_hosts_file(const std::vector<HostsEntry>& entries) {
    std::string out = std::string(kFileMarker) + "\n";
    out.reserve(out.size() + entries.size() * 64);  // an address and a name: most lines are shorter
    for (const auto& e : entries) {
        out += e.addr.str();
        out += ' ';
        out += e.name;
        out += '\n';
    }
    return out;
}

namespace {

// Whether traffic to `a` leaves through w: a subnet of its own or an allowed IP of a peer.
bool reached_through(const WgInterface& w, const model::IpAddr& a) {
    auto holds = [&](const Prefix& p) { return p.addr.family == a.family && p.contains(a); };
    for (const auto& addr : w.addresses)
        if (holds(addr.masked())) return true;
    for (const auto& [k, p] : w.peers)
        if (std::any_of(p.allowed_ips.begin(), p.allowed_ips.end(), holds)) return true;
    return false;
}

// The sysctls of the node that matter to w: the global ones and w's own, not another
// interface's ("net/ipv4/conf/<if>/...").
std::vector<std::pair<std::string, std::string>> sysctls_of(const model::HostState& hs, const WgInterface& w) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : hs.sysctls) {
        const size_t conf = k.find("/conf/");
        if (conf != std::string::npos) {
            const size_t start = conf + 6, end = k.find('/', start);
            const std::string dev = k.substr(start, end == std::string::npos ? std::string::npos : end - start);
            if (dev != "all" && dev != "default" && dev != w.name) continue;
        }
        out.emplace_back(k, v);
    }
    return out;
}

}  // namespace

std::vector<const model::FwRule*> firewall_rules_of(const model::HostState& hs, const model::WgInterface& w) {
    std::vector<const model::FwRule*> out;
    for (const auto& [id, r] : hs.firewall) {
        bool mine = false;
        switch (r.kind) {
            case model::FwKind::accept_udp: mine = w.listen_port && *w.listen_port == r.port; break;
            case model::FwKind::forward:
            case model::FwKind::masquerade: mine = r.iif == w.name || r.oif == w.name; break;
            case model::FwKind::exit_forward: mine = r.iif == w.name; break;
            case model::FwKind::exit_masquerade: mine = r.from && reached_through(w, *r.from); break;
            case model::FwKind::dnat: mine = r.to && reached_through(w, *r.to); break;
        }
        if (mine) out.push_back(&r);
    }
    return out;
}

std::string render_wg_quick(const Fleetwide& fw, const std::string& fleet, const std::string& node,
                            const std::optional<std::string>& private_key) {
    model::InterfaceLabels labels;
    WgInterface w = render_interface(fw, fleet, node, labels);
    std::string out = fmt::format("# wg-quick config of {} in fleet {} (interface {}), rendered by wg-fleet.\n", node, fleet, w.name);
    const model::HostState host = render_host(fw, node).state;
    const auto sysctls = sysctls_of(host, w);
    const auto rules = firewall_rules_of(host, w);
    if (!sysctls.empty() || !rules.empty() || !host.files.empty()) {
        out += "# Not expressed here (wg-fleet applies them; under wg-quick, PostUp/PostDown or other tools must):\n";
        for (const auto& [k, v] : sysctls) out += fmt::format("#   sysctl {} = {}\n", k, v);
        for (const auto* r : rules) out += fmt::format("#   firewall rule {}: {}\n", r->id, describe_rule(*r));
        for (const auto& [path, f] : host.files) out += fmt::format("#   file {}\n", path);
    }
    out += "[Interface]\n";
    if (private_key) {
        out += fmt::format("PrivateKey = {}\n", *private_key);
    } else {
        out += fmt::format("# PrivateKey: not readable here; it is {} on {} and is loaded from there:\n", labels.private_key_file, node);
        out += fmt::format("PostUp = wg set %i private-key {}\n", labels.private_key_file);
    }
    // Addresses in plan order (the device keeps them as a set; people read the plan's order).
    const auto& planned = fw.plan.fleets.at(fleet).nodes;
    if (auto na = planned.find(node); na != planned.end() && !na->second.addresses.empty()) {
        std::string addrs;
        for (const auto& a : na->second.addresses) addrs += (addrs.empty() ? "" : ", ") + a.str();
        out += "Address = " + addrs + "\n";
    }
    if (w.listen_port) out += fmt::format("ListenPort = {}\n", *w.listen_port);
    if (w.mtu) out += fmt::format("MTU = {}\n", *w.mtu);
    if (w.fwmark) {
        out += "# An exit node: wg-quick routes the peer's 0.0.0.0/0 and ::/0 by policy itself (Table = auto: a\n";
        out += "# fwmark on the device, a table of its own and a suppress_prefixlength 0 rule), as wg-fleet does\n";
        out += fmt::format("# with fwmark {:#x} and table {}.\n", w.fwmark, model::kExitTable);
    }
    // wg-quick adds a route per allowed IP without a source; the ones wg-fleet gives a preferred
    // source (IPv6 routes of a peer of several controllers) get it once they exist.
    for (const auto& r : host.routes)
        if (r.dev == w.name && r.src)
            out += fmt::format("PostUp = ip -{} route change {} dev %i src {}\n", r.dst.addr.is_v4() ? 4 : 6, r.dst.str(), r.src->str());
    // Peers in name order, which is how people read a config.
    std::vector<std::pair<const std::string*, const WgPeer*>> peers;
    for (const auto& [k, p] : w.peers) peers.emplace_back(&labels.peer_names.at(k), &p);
    std::sort(peers.begin(), peers.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
    out.reserve(out.size() + peers.size() * 256);  // a peer's section is about 150 bytes, more with routes
    for (const auto& [name, p] : peers) {
        out += "\n[Peer]\n# ";
        out += *name;
        out += "\nPublicKey = ";
        out += p->public_key.base64();
        out += "\nAllowedIPs = ";
        for (size_t i = 0; i < p->allowed_ips.size(); ++i) {
            if (i) out += ", ";
            out += p->allowed_ips[i].str();
        }
        out += '\n';
        if (p->endpoint) out += "Endpoint = " + p->endpoint->str() + "\n";
        if (p->keepalive) out += fmt::format("PersistentKeepalive = {}\n", p->keepalive);
    }
    for (const auto& n : labels.pending) out += fmt::format("\n# {}: no public key yet (pending)\n", n);
    return out;
}

std::optional<std::string> resolve_route_target(const Fleetwide& fw, const model::HttpRoute& r) {
    auto url = parse_url(r.to);
    if (!url) return std::nullopt;
    std::string host = url->host;
    if (!model::IpAddr::parse(host)) {
        auto a = fw.index.find(r.node), b = fw.index.find(host);
        if (a == fw.index.end() || b == fw.index.end()) return std::nullopt;
        std::optional<IpAddr> addr;
        for (const auto& ma : a->second)
            for (const auto& mb : b->second)
                if (!addr && ma.fleet == mb.fleet) {
                    const Fleet& f = fw.cfg.fleets.at(ma.fleet);
                    const FleetPlan& fp = fw.plan.fleets.at(ma.fleet);
                    if (auto v4 = fp.ipv4.find(host); v4 != fp.ipv4.end()) addr = v4->second;
                    else addr = primary_address(f, fp, host);
                }
        if (!addr) return std::nullopt;
        host = addr->str();
    }
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return url->scheme + "://" + host + (url->port ? ":" + std::to_string(url->port) : "") + url->path;
}

std::string render_traefik_route(const model::HttpRoute& r, const std::string& target_url) {
    std::string out = std::string(kFileMarker) + "\n";
    out += "http:\n  routers:\n";
    out += fmt::format("    {}:\n      rule: {}\n      entryPoints: [{}]\n      service: {}\n", yaml_quote(r.name),
                       yaml_quote("Host(`" + r.host + "`)"), yaml_quote(r.entrypoint), yaml_quote(r.name));
    if (r.certresolver) out += fmt::format("      tls:\n        certResolver: {}\n", yaml_quote(*r.certresolver));
    out += "  services:\n";
    out += fmt::format("    {}:\n      loadBalancer:\n        servers:\n          - url: {}\n", yaml_quote(r.name), yaml_quote(target_url));
    return out;
}

std::string render_caddy_route(const model::HttpRoute& r, const std::string& target_url) {
    const size_t authority = target_url.find("://");
    const size_t path = authority == std::string::npos ? std::string::npos : target_url.find('/', authority + 3);
    std::string out = std::string(kFileMarker) + "\n";
    out += fmt::format("# route {}\n{}{} {{\n\treverse_proxy {}\n}}\n", r.name, r.entrypoint == "web" ? "http://" : "https://", r.host,
                       target_url.substr(0, path));
    return out;
}

std::string http_route_file(const model::Config& cfg, const model::HttpRoute& r) {
    return cfg.http_routes_dir + "/" + r.name + (cfg.http_server == model::HttpServer::caddy ? ".caddy" : ".yml");
}

}  // namespace wgf::plan
