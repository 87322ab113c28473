#include "plan/validate.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "config/tree.hpp"
#include "plan/forward_target.hpp"
#include "plan/render.hpp"

namespace wgf::plan {
namespace {

using config::join_path;
using config::quote;
using model::Config;
using model::Fleet;
using model::FleetStyle;

std::string names_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

std::vector<std::string> keys_of(const std::map<std::string, model::Member>& m) {
    std::vector<std::string> out;
    out.reserve(m.size());
    for (const auto& [k, v] : m) out.push_back(k);
    return out;
}

std::string fmt_suffix(uint64_t s) {
    return fmt::format("{:x}:{:x}:{:x}:{:x}", (s >> 48) & 0xffff, (s >> 32) & 0xffff, (s >> 16) & 0xffff, s & 0xffff);
}

class Validator {
public:
    Validator(const Config& cfg, const AddressPlan& plan, const NodeIndex& index, const config::Node& tree, config::Diagnostics& d,
              const config::Broken& broken)
        : cfg_(cfg), plan_(plan), tree_(tree), d_(d), index_(index), broken_(broken) {}

    void run() {
        if (broken_.hit("")) return;  // the document itself could not be read
        for (const auto& [name, f] : cfg_.fleets)
            if (!broken_.hit(fleet_path(name))) check_fleet(name, f);
        check_fleet_overlaps();
        check_nodes();
        check_routes_across_fleets();
        check_forwards();
        check_http_routes();
        check_managed_paths();
    }

private:
    void error(const std::string& path, std::string msg, bool at_key = false) {
        d_.error(config::locate(tree_, path, at_key), path, std::move(msg));
    }
    void warning(const std::string& path, std::string msg, bool at_key = false) {
        d_.warning(config::locate(tree_, path, at_key), path, std::move(msg));
    }
    // Which members wait for a key is news once the file parses: before, the errors come first
    // (as they did when validation waited for a clean parse).
    void pending(const std::string& path, std::string msg) {
        if (broken_.empty()) d_.pending(config::locate(tree_, path, true), path, std::move(msg));
    }

    // Whether the parse could not read `key` of fleet `f` (its default stands in) or the fleet.
    bool broken(const std::string& f, std::string_view key) const { return !broken_.empty() && broken_.hit(join_path(fleet_path(f), key)); }
    // The same for `key` of a member (paths are built only when something is broken: a fleet may
    // have 100,000 members).
    bool broken(const std::string& f, const char* group, const std::string& node, std::string_view key) const {
        return !broken_.empty() && broken_.hit(key.empty() ? member_path(f, group, node) : member_key(f, group, node, key));
    }
    static std::string member_key(const std::string& f, const char* group, const std::string& n, std::string_view key) {
        return join_path(member_path(f, group, n), key);
    }
    // A reference to a node no fleet has: an error unless the node was left out with a part of
    // the file the parse could not read.
    bool unknown_node(const std::string& node) const { return !broken_.left_out(node) && !broken_.hit("fleets"); }

    static std::string fleet_path(const std::string& f) { return join_path("fleets", f); }
    static std::string member_path(const std::string& f, const char* group, const std::string& n) {
        return join_path(join_path(fleet_path(f), group), n);
    }
    static std::string route_path(const std::string& f, const char* group, const std::string& n, size_t i) {
        return config::index_path(join_path(member_path(f, group, n), "routes"), i);
    }

    void check_fleet(const std::string& name, const Fleet& f) {
        const FleetPlan& fp = plan_.fleets.at(name);
        const std::string fpath = fleet_path(name);
        if (f.style == FleetStyle::clan) {
            if (f.controllers.empty() && !broken_.touches(join_path(fpath, "controllers")))
                error(join_path(fpath, "controllers"), "a clan-style fleet needs at least one controller");
            check_clan_peers(name, f);
            check_controller_ids(name, f, fp);
            check_suffixes(name, f, fp);
        } else {
            if (f.ip6 && f.subnet && !f.subnet->contains(*f.ip6))
                error(join_path(fpath, "ip6"), fmt::format("{} is outside the fleet's subnet {}", quote(f.ip6->str()), f.subnet->str()));
            if (f.peers.count(f.server))
                error(member_path(name, "peers", f.server),
                      fmt::format("{} is this fleet's server; a node cannot be both", quote(f.server)), true);
            for (const auto& [p, m] : f.peers)
                if (m.controller)
                    error(join_path(member_path(name, "peers", p), "controller"),
                          "subnet-style fleets have no controllers; remove controller:", true);
            if (!f.external_ip && !broken(name, "external_ip"))
                warning(fpath, "no external_ip: clients get no endpoint for the server", true);
            if (!f.server_public_key && !f.peers.empty() && !broken(name, "public_key"))
                pending(fpath, fmt::format("the server {} has no public key yet: pending until it is known (public_key: or keys_dir)",
                                           quote(f.server)));
            check_suffixes(name, f, fp);
        }
        auto members = [&](const char* group, const std::map<std::string, model::Member>& ms) {
            for (const auto& [n, m] : ms) {
                if (broken(name, group, n, "")) continue;
                if (!m.public_key && !broken(name, group, n, "public_key"))
                    pending(member_path(name, group, n),
                            "no public key yet: pending (it joins once its key is known from public_key: or keys_dir)");
                if (!broken(name, "ipv4")) check_member_ipv4(name, f, group, n, m);
                check_routes(name, f, fp, group, n, m);
                if (f.style == FleetStyle::clan && std::string_view(group) == "controllers" && !m.endpoint &&
                    !broken(name, group, n, "endpoint") && !broken(name, "topology") && f.topology == model::Topology::hub &&
                    !f.peers.empty())
                    warning(member_path(name, group, n), "no endpoint: peers cannot start a connection to this controller", true);
            }
        };
        members("controllers", f.controllers);
        members("peers", f.peers);
        if (fp.ipv4_exhausted)
            error(join_path(fpath, "ipv4"), fmt::format("{} has no free address left for every member", quote(f.ipv4->str())));
        check_route_claims(name, f);
        check_dialable_pairs(name, f);
        check_exit_nodes(name, f);
    }

    // exit_node: names a controller of the fleet; in a hub with several controllers, the peer's
    // own (its IPv4 address is routed back only through its designated controller); one per node.
    void check_exit_nodes(const std::string& name, const Fleet& f) {
        const std::string fpath = fleet_path(name);
        auto unknown = [&](const std::string& path, const std::string& e) {
            if (f.style == FleetStyle::subnet) {
                error(path, fmt::format("{} — subnet-style fleets have no controllers to be an exit node; remove exit_node:", quote(e)));
                return true;
            }
            if (f.controllers.count(e) || broken(name, "controllers", e, "")) return false;
            const auto names = keys_of(f.controllers);
            const std::vector<std::string_view> words(names.begin(), names.end());
            auto best = config::nearest_word(e, words);
            error(path, fmt::format("{} — not a controller of fleet {}; controllers: {}{}", quote(e), quote(name), names_list(names),
                                    best ? fmt::format("; did you mean {}?", quote(*best)) : ""));
            return true;
        };
        const bool fleet_bad = f.exit_node && unknown(join_path(fpath, "exit_node"), *f.exit_node);
        const bool one_home = f.topology == model::Topology::mesh || f.controllers.size() <= 1;
        for (const auto& [p, m] : f.peers) {
            if (!m.exit_node && (!f.exit_node || fleet_bad)) continue;
            if (broken(name, "peers", p, "")) continue;
            const std::string path = m.exit_node ? join_path(member_path(name, "peers", p), "exit_node") : member_path(name, "peers", p);
            const std::string* e = model::exit_node_of(f, m);
            if (!e || (m.exit_node && unknown(path, *e))) continue;
            if (f.style == FleetStyle::subnet) continue;
            if (!one_home && m.controller && *m.controller != *e && f.controllers.count(*m.controller))
                error(path,
                      fmt::format("{} — {}exit node {} is not the peer's controller {}: in a hub a peer's traffic leaves through its own "
                                  "controller; set controller: {} or exit_node: {}{}",
                                  quote(*e), m.exit_node ? "" : "the fleet's ", quote(*e), quote(*m.controller), *e, *m.controller,
                                  m.exit_node ? "" : " (or none)"),
                      !m.exit_node);
            auto [it, fresh] = exit_users_.emplace(p, name);
            if (!fresh)
                error(path,
                      fmt::format("{} already sends all its traffic through an exit node in fleet {}; a node has one exit node", quote(p),
                                  quote(it->second)),
                      !m.exit_node);
        }
    }

    // Two members that hold each other as WireGuard peers connect only if at least one of them
    // has an endpoint: WireGuard has nothing to send a first handshake to otherwise. Pairs of
    // controllers always hold each other; in a mesh so do peers, with each other and with the
    // controllers (in a hub a controller without endpoint has its own warning above). One warning
    // per member, with the count and the first few names, so a large fleet gets n lines, not n².
    void check_dialable_pairs(const std::string& name, const Fleet& f) {
        if (broken(name, "topology")) return;
        bool mesh = f.topology == model::Topology::mesh;
        // A member whose endpoint the parse could not read has one, as far as this check knows.
        auto endpointless = [&](const char* group, const std::string& n, const model::Member& m) {
            return !m.endpoint && !broken(name, group, n, "endpoint");
        };
        std::vector<const std::string*> controllers, peers;  // those without an endpoint, in name order
        for (const auto& [n, m] : f.controllers)
            if (endpointless("controllers", n, m)) controllers.push_back(&n);
        if (mesh)
            for (const auto& [n, m] : f.peers)
                if (endpointless("peers", n, m) && !f.controllers.count(n)) peers.push_back(&n);
        auto warn = [&](const char* group, const std::string& node, const std::vector<const std::vector<const std::string*>*>& lists) {
            constexpr size_t kNamed = 3;
            // `node` is in one of the lists: every other entry is a partner. Counted, not walked,
            // so an endpointless mesh of n members costs n, not n², to report.
            size_t count = 0;
            for (const auto* list : lists) count += list->size();
            --count;
            std::vector<std::string> named;
            for (const auto* list : lists)
                for (auto it = list->begin(); it != list->end() && named.size() < kNamed; ++it)
                    if (**it != node) named.push_back(**it);
            if (count == 0) return;
            std::string msg;
            if (count == 1) {
                msg = fmt::format(
                    "no endpoint, and neither has {}, which it connects to directly: neither side can start a session "
                    "(give one of the two an endpoint)",
                    named[0]);
            } else {
                std::string who = names_list(named) + (count > named.size() ? fmt::format(" and {} more", count - named.size()) : "");
                msg = fmt::format(
                    "no endpoint, and neither have {} members it connects to directly ({}): neither side of these pairs "
                    "can start a session (give one of each pair an endpoint)",
                    count, who);
            }
            warning(member_path(name, group, node), msg, true);
        };
        for (const auto* c : controllers) warn("controllers", *c, {&controllers, &peers});
        for (const auto* p : peers) warn("peers", *p, {&controllers, &peers});
    }

    void check_clan_peers(const std::string& name, const Fleet& f) {
        for (const auto& [p, m] : f.peers) {
            const std::string& peer = p;  // clang before 16 cannot capture a structured binding (the fuzz build uses clang)
            auto ppath = [&] { return member_path(name, "peers", peer); };
            if (broken(name, "peers", peer, "")) continue;
            if (f.controllers.count(p)) {
                error(ppath(),
                      fmt::format("{} is both a controller and a peer of fleet {}; a node has one role per fleet", quote(p), quote(name)),
                      true);
                continue;
            }
            if (m.controller) {
                if (!f.controllers.count(*m.controller) && !broken(name, "controllers", *m.controller, ""))
                    error(join_path(ppath(), "controller"), fmt::format("{} — unknown controller; controllers of this fleet: {}",
                                                                        quote(*m.controller), names_list(keys_of(f.controllers))));
            } else if (f.controllers.size() > 1 && !broken(name, "peers", peer, "controller")) {
                error(ppath(),
                      fmt::format("the fleet has {} controllers: say which one is this peer's with controller: ({})", f.controllers.size(),
                                  names_list(keys_of(f.controllers))),
                      true);
            }
        }
    }

    void check_controller_ids(const std::string& name, const Fleet& f, const FleetPlan& fp) {
        std::map<uint16_t, std::string> by_id;
        std::set<uint16_t> used;
        for (const auto& [c, id] : fp.ids) used.insert(id);
        for (const auto& [c, id] : fp.ids) {
            // An id the parse could not read is not the one the controller would have.
            if (broken(name, "controllers", c, "id")) continue;
            auto [it, fresh] = by_id.emplace(id, c);
            if (fresh) continue;
            uint16_t free = id;
            do ++free;
            while (used.count(free));
            used.insert(free);  // each suggestion is free of the others too
            std::string cpath = member_path(name, "controllers", c);
            bool pinned = f.controllers.at(c).id.has_value();
            error(pinned ? join_path(cpath, "id") : cpath,
                  fmt::format("controllers {} and {} share the /56 id 0x{:04x} ({}) — pin a free one, e.g. id: 0x{:04x}", quote(it->second),
                              quote(c), id, fp.nets.at(c).str(), free),
                  !pinned);
        }
    }

    void check_suffixes(const std::string& name, const Fleet& f, const FleetPlan& fp) {
        // Controllers route each peer's /96 (the suffix's top 32 bits), so those must be unique too.
        bool clan = f.style == FleetStyle::clan;
        std::unordered_map<uint64_t, std::string_view> seen;  // the names live in the config and the plan
        seen.reserve(fp.suffixes.size() + 1);
        uint64_t mask = UINT64_MAX;
        if (!clan && f.subnet) mask = subnet_host_mask(f.subnet->len);
        if (!clan && f.ip6 && f.subnet) {
            uint64_t host = 0;
            for (int i = 8; i < 16; ++i) host = (host << 8) | f.ip6->bytes[i];
            seen.emplace(host & mask, f.server);  // the plan keeps only the subnet's host bits
        }
        if (!clan)
            for (const auto& [p, m] : f.peers)
                if (m.suffix && (*m.suffix & ~mask))
                    error(join_path(member_path(name, "peers", p), "suffix"),
                          fmt::format("{} does not fit in the {} host bits of {}", quote(fmt_suffix(*m.suffix)), 128 - f.subnet->len,
                                      f.subnet->str()));
        // fp.suffixes holds every peer, or nothing (a subnet fleet without subnet:): the two maps
        // walk in step.
        auto peer = f.peers.begin();
        for (const auto& [p, s] : fp.suffixes) {
            const auto& pin = (peer++)->second.suffix;
            if (pin && (*pin & ~mask)) continue;  // reported above
            if (broken(name, "peers", p, "suffix")) continue;
            uint64_t key = clan ? (s >> 32) : s;
            auto [it, fresh] = seen.emplace(key, p);
            if (fresh) continue;
            std::string ppath = member_path(name, "peers", p);
            bool pinned = pin.has_value();
            uint64_t suggestion = clan_suffix(p + "#1");
            auto other = fp.suffixes.find(std::string(it->second));
            std::string what = !clan                                                ? "address"
                               : (other != fp.suffixes.end() && other->second == s) ? "suffix"
                                                                                    : "/96 (top 32 bits of the suffix)";
            error(pinned ? join_path(ppath, "suffix") : ppath,
                  fmt::format("peers {} and {} share the {} {} — pin another, e.g. suffix: \"{}\"", quote(it->second), quote(p), what,
                              fmt_suffix(s), fmt_suffix(suggestion)),
                  !pinned);
        }
    }

    void check_member_ipv4(const std::string& fleet, const Fleet& f, const char* group, const std::string& node, const model::Member& m) {
        if (!m.ipv4) return;
        std::string mpath = member_path(fleet, group, node);
        std::string p = join_path(mpath, "ipv4");
        if (!f.ipv4) {
            error(p, fmt::format("{} — the fleet has no ipv4: subnet to place it in", quote(m.ipv4->str())));
            return;
        }
        if (!f.ipv4->contains(*m.ipv4)) {
            error(p, fmt::format("{} is outside the fleet's ipv4 {}", quote(m.ipv4->str()), f.ipv4->str()));
            return;
        }
        uint32_t v = m.ipv4->v4_value(), net = f.ipv4->addr.v4_value();
        uint32_t bcast = net | (f.ipv4->len == 0 ? UINT32_MAX : (UINT32_MAX >> f.ipv4->len));
        if (f.ipv4->len < 31 && (v == net || v == bcast))
            error(p, fmt::format("{} is the network or broadcast address of {}", quote(m.ipv4->str()), f.ipv4->str()));
        auto [it, fresh] = ipv4_seen_[fleet].emplace(v, mpath);
        if (!fresh) error(p, fmt::format("{} is also the address of {}", quote(m.ipv4->str()), it->second));
    }

    void check_routes(const std::string& fleet, const Fleet& f, const FleetPlan& fp, const char* group, const std::string& node,
                      const model::Member& m) {
        for (size_t i = 0; i < m.routes.size(); ++i) {
            const auto& r = m.routes[i];
            auto p = [&] { return route_path(fleet, group, node, i); };
            // A default route overlaps everything, the fleet's addresses too: one error says why.
            if (r.len == 0) {
                error(p(), fmt::format("{} is a default route: routes: lists prefixes a member announces; to send a peer's "
                                       "traffic out through a controller, set exit_node: <controller> on the peer (or the fleet)",
                                       quote(r.str())));
                continue;
            }
            if ((r.overlaps(fp.prefix) && !broken(fleet, "subnet")) || (f.ipv4 && r.overlaps(*f.ipv4)))
                error(p(), fmt::format("{} overlaps the addresses of fleet {} itself", quote(r.str()), quote(fleet)));
        }
    }

    void check_route_claims(const std::string& fleet, const Fleet& f) {
        // A prefix given to two members would be stolen by whichever WireGuard peer is set last.
        struct Claim {
            model::Prefix prefix;
            const char* group;
            const std::string* node;
            size_t index;
        };
        std::vector<Claim> claims;
        auto collect = [&](const char* group, const std::map<std::string, model::Member>& ms) {
            for (const auto& [n, m] : ms)
                for (size_t i = 0; i < m.routes.size(); ++i)
                    claims.push_back({.prefix = m.routes[i], .group = group, .node = &n, .index = i});
        };
        collect("controllers", f.controllers);
        collect("peers", f.peers);
        std::sort(claims.begin(), claims.end(), [](const Claim& a, const Claim& b) { return a.prefix < b.prefix; });
        // The paths are needed only where a prefix is claimed twice; among those, each is reported
        // against the one before it in path order.
        for (size_t i = 0; i < claims.size();) {
            size_t end = i + 1;
            while (end < claims.size() && claims[end].prefix == claims[i].prefix) ++end;
            if (end - i > 1) {
                std::vector<std::string> paths;
                for (size_t j = i; j < end; ++j) paths.push_back(route_path(fleet, claims[j].group, *claims[j].node, claims[j].index));
                std::sort(paths.begin(), paths.end());
                for (size_t j = 1; j < paths.size(); ++j)
                    error(paths[j], fmt::format("{} is already routed by {}", quote(claims[i].prefix.str()), paths[j - 1]));
            }
            i = end;
        }
    }

    void check_fleet_overlaps() {
        std::vector<std::pair<model::Prefix, std::string>> nets;  // (prefix, path)
        for (const auto& [name, f] : cfg_.fleets) {
            if (broken_.hit(fleet_path(name))) continue;
            const FleetPlan& fp = plan_.fleets.at(name);
            std::string own = f.style == FleetStyle::clan ? fleet_path(name) : join_path(fleet_path(name), "subnet");
            if (f.style == FleetStyle::clan || f.subnet) nets.emplace_back(fp.prefix, own);
            if (f.ipv4) nets.emplace_back(*f.ipv4, join_path(fleet_path(name), "ipv4"));
        }
        for (size_t i = 0; i < nets.size(); ++i)
            for (size_t j = 0; j < i; ++j)
                if (nets[i].first.overlaps(nets[j].first))  // a fleet's own IPv6 and IPv4 never overlap
                    error(nets[i].second,
                          fmt::format("{} overlaps {} of {}", quote(nets[i].first.str()), nets[j].first.str(), nets[j].second),
                          nets[i].second.find('.', 7) == std::string::npos);
    }

    // Per node: every fleet it is in needs its own interface and, where it listens, its own port.
    void check_nodes() {
        for (const auto& [node, ms] : index_) {
            if (ms.size() < 2) continue;
            std::map<std::string, std::string> ifaces;
            std::map<uint16_t, std::string> ports;
            for (const auto& mb : ms) {
                const Fleet& f = cfg_.fleets.at(mb.fleet);
                std::string where = node_path(mb, node);
                if (broken_.hit(fleet_path(mb.fleet))) continue;
                // A default in place of an interface or port the parse could not read clashes
                // with nothing the file says.
                auto [it, fresh] = broken(mb.fleet, "interface") ? std::pair(ifaces.end(), true) : ifaces.emplace(f.interface, mb.fleet);
                if (!fresh)
                    error(where,
                          fmt::format("node {} is in fleets {} and {}, both on interface {} — set interface: on one", quote(node),
                                      quote(it->second), quote(mb.fleet), quote(f.interface)),
                          true);
                if (auto port = listen_port(f, mb.role, node); port && !broken(mb.fleet, "port")) {
                    auto [pit, pfresh] = ports.emplace(*port, mb.fleet);
                    if (!pfresh)
                        error(where,
                              fmt::format("node {} listens on port {} in fleets {} and {} — give one fleet another port:", quote(node),
                                          *port, quote(pit->second), quote(mb.fleet)),
                              true);
                }
            }
        }
    }

    // A node in two fleets that both announce a prefix (by members other than the node itself)
    // would route it over both interfaces: the second route is refused by the kernel (EEXIST),
    // and every apply fails. Reported at the later announcement, naming the earlier one.
    void check_routes_across_fleets() {
        struct Claim {
            model::Prefix prefix;  // masked
            const std::string* fleet;
            const char* group;
            const std::string* node;
            size_t index;
        };
        std::vector<Claim> claims;
        for (const auto& [fname, f] : cfg_.fleets)
            for (const char* group : {"controllers", "peers"})
                for (const auto& [n, m] : std::string_view(group) == "controllers" ? f.controllers : f.peers)
                    for (size_t i = 0; i < m.routes.size(); ++i)
                        claims.push_back({.prefix = m.routes[i].masked(), .fleet = &fname, .group = group, .node = &n, .index = i});
        std::sort(claims.begin(), claims.end(), [](const Claim& a, const Claim& b) { return a.prefix < b.prefix; });
        // The paths are needed only where a prefix is announced in two fleets or more.
        for (size_t first = 0; first < claims.size();) {
            size_t end = first + 1;
            while (end < claims.size() && claims[end].prefix == claims[first].prefix) ++end;
            if (std::any_of(claims.begin() + static_cast<std::ptrdiff_t>(first) + 1, claims.begin() + static_cast<std::ptrdiff_t>(end),
                            [&](const Claim& c) { return *c.fleet != *claims[first].fleet; })) {
                std::vector<Announce> list;
                for (size_t j = first; j < end; ++j) {
                    const Claim& c = claims[j];
                    list.push_back({.fleet = *c.fleet, .node = *c.node, .path = route_path(*c.fleet, c.group, *c.node, c.index)});
                }
                check_announcements(claims[first].prefix, list);
            }
            first = end;
        }
    }

    struct Announce {
        std::string fleet, node, path;
    };

    // The announcements of one prefix, in two fleets or more.
    void check_announcements(const model::Prefix& prefix, std::vector<Announce>& list) {
        std::sort(list.begin(), list.end(), [](const Announce& a, const Announce& b) { return a.path < b.path; });
        // Does some node belong to both fleets and route both announcements (it is not the announcer)?
        auto routed_by_both = [&](const Announce& a, const Announce& b) -> std::optional<std::string> {
            for (const auto& [node, ms] : index_) {
                if (ms.size() < 2 || node == a.node || node == b.node) continue;
                bool in_a = false, in_b = false;
                for (const auto& mb : ms) in_a = in_a || mb.fleet == a.fleet, in_b = in_b || mb.fleet == b.fleet;
                if (in_a && in_b) return node;
            }
            return std::nullopt;
        };
        std::set<std::string> reported;
        for (size_t j = 1; j < list.size(); ++j)
            for (size_t i = 0; i < j; ++i) {
                if (list[i].fleet == list[j].fleet || reported.count(list[j].path)) continue;
                if (auto node = routed_by_both(list[i], list[j])) {
                    error(list[j].path, fmt::format("{} is also announced in fleet {} by {}; node {} is in both fleets and would route it "
                                                    "over two interfaces — announce it in one fleet only",
                                                    quote(prefix.str()), quote(list[i].fleet), list[i].path, quote(*node)));
                    reported.insert(list[j].path);
                }
            }
    }

    static std::string node_path(const Membership& mb, const std::string& node) {
        if (mb.role == model::Role::server) return fleet_path(mb.fleet);
        return member_path(mb.fleet, mb.role == model::Role::controller ? "controllers" : "peers", node);
    }

    std::vector<std::string> fleets_of(const std::string& node) const {
        std::vector<std::string> out;
        auto it = index_.find(node);
        if (it != index_.end())
            for (const auto& mb : it->second) out.push_back(mb.fleet);
        return out;
    }

    // The fleet through which `node` reaches `to`, or an error message.
    std::optional<std::string> shared_fleet(const std::string& path, const std::string& node, const std::string& to,
                                            const std::optional<std::string>& fleet) {
        auto a = fleets_of(node), b = fleets_of(to);
        if (a.empty()) {
            if (unknown_node(node)) error(join_path(path, "node"), fmt::format("{} — unknown node; no fleet has it", quote(node)));
            return std::nullopt;
        }
        if (b.empty()) {
            if (unknown_node(to))
                error(join_path(path, "to"), fmt::format("{} — unknown node; no fleet has it{}", quote(to), did_you_mean(to)));
            return std::nullopt;
        }
        // Which fleets the two share is not known when one of them may be in a fleet left out.
        if (broken_.left_out(node) || broken_.left_out(to)) return std::nullopt;
        std::vector<std::string> both;
        std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
        if (fleet) {
            if (std::find(both.begin(), both.end(), *fleet) == both.end() && !broken_.hit(fleet_path(*fleet))) {
                error(join_path(path, "fleet"),
                      fmt::format("{} — {} and {} are not both in this fleet", quote(*fleet), quote(node), quote(to)));
                return std::nullopt;
            }
            return fleet;
        }
        if (both.empty()) {
            error(join_path(path, "to"), fmt::format("{} shares no fleet with {}", quote(to), quote(node)));
            return std::nullopt;
        }
        if (both.size() > 1) {
            error(path, fmt::format("{} and {} share fleets {}: say which with fleet:", quote(node), quote(to), names_list(both)));
            return std::nullopt;
        }
        return both.front();
    }

    // "; did you mean 'x'?" for the node name nearest to `name`, when one is close.
    std::string did_you_mean(const std::string& name) const {
        std::vector<std::string_view> nodes;
        nodes.reserve(index_.size());
        for (const auto& [node, ms] : index_) nodes.emplace_back(node);
        auto best = config::nearest_word(name, nodes);
        return best ? fmt::format("; did you mean {}?", quote(*best)) : "";
    }

    // The address families a forward's DNAT rules take: an explicit address's own family; for
    // a member, IPv6 and, when it has one, IPv4 (the render makes one rule per family).
    struct Families {
        bool v4 = false, v6 = false;
    };
    Families forward_families(const model::Forward& fw) const {
        if (fw.to_addr) return {.v4 = fw.to_addr->is_v4(), .v6 = fw.to_addr->is_v6()};
        bool v4 = false;
        for (const auto& [name, fp] : plan_.fleets) v4 = v4 || fp.ipv4.count(fw.to);
        return {.v4 = v4, .v6 = true};
    }

    void check_forwards() {
        std::map<std::string, std::string> names;
        // (node, proto, port, IPv6?) -> the forward that takes it.
        std::map<std::tuple<std::string, model::Proto, uint16_t, bool>, std::string> ports;
        for (size_t i = 0; i < cfg_.forwards.size(); ++i) {
            const auto& fw = cfg_.forwards[i];
            std::string path = config::index_path("forwards", i);
            if (!fw.name.empty()) {
                auto [it, fresh] = names.emplace(fw.name, path);
                if (!fresh) error(join_path(path, "name"), fmt::format("{} — the name is already used by {}", quote(fw.name), it->second));
            }
            if (fw.node.empty() || fw.to.empty() || !fw.port) continue;  // the parser reported what is missing
            if (broken_.touches(path)) continue;
            // One port may go to an IPv4 and an IPv6 address by two forwards, one per family.
            const Families fam = forward_families(fw);
            for (bool v6 : {false, true}) {
                if (!(v6 ? fam.v6 : fam.v4)) continue;
                auto [pit, pfresh] = ports.emplace(std::make_tuple(fw.node, fw.proto, fw.port, v6), path);
                if (!pfresh) {
                    error(join_path(path, "port"),
                          fmt::format("{} — {} port {} on {} is already forwarded by {}", quote(std::to_string(fw.port)),
                                      to_string(fw.proto), fw.port, quote(fw.node), pit->second));
                    break;
                }
            }
            // A forward of the node's own WireGuard port would take the tunnel's packets away.
            if (fw.proto == model::Proto::udp)
                if (auto it = index_.find(fw.node); it != index_.end())
                    for (const auto& mb : it->second)
                        if (listen_port(cfg_.fleets.at(mb.fleet), mb.role, fw.node) == fw.port && !broken(mb.fleet, "port"))
                            error(join_path(path, "port"),
                                  fmt::format("{} — udp port {} on {} is the WireGuard port of fleet {}", quote(std::to_string(fw.port)),
                                              fw.port, quote(fw.node), quote(mb.fleet)));
            if (fw.to_addr) {
                check_forward_address(path, fw);
                continue;
            }
            auto fleet = shared_fleet(path, fw.node, fw.to, fw.fleet);
            if (!fleet) continue;
            const FleetPlan& fp = plan_.fleets.at(*fleet);
            if (!fp.ipv4.count(fw.to))
                warning(join_path(path, "to"), fmt::format("{} has no IPv4 address in fleet {}: only IPv6 clients reach this forward",
                                                           quote(fw.to), quote(*fleet)));
        }
    }

    // An explicit target must lie in what the node reaches over one of its fleets (the fleet's
    // addresses, a prefix another member announces), must not be the node itself, and must
    // leave no doubt which fleet's interface the forward goes out of.
    void check_forward_address(const std::string& path, const model::Forward& fw) {
        auto it = index_.find(fw.node);
        if (it == index_.end()) {
            if (unknown_node(fw.node))
                error(join_path(path, "node"), fmt::format("{} — unknown node; no fleet has it{}", quote(fw.node), did_you_mean(fw.node)));
            return;
        }
        // What the node reaches is not known when one of its fleets was left out.
        if (broken_.left_out(fw.node) || (fw.fleet && broken_.hit(fleet_path(*fw.fleet)))) return;
        const model::IpAddr& addr = *fw.to_addr;
        std::vector<Membership> fleets;
        for (const auto& mb : it->second)
            if (!fw.fleet || mb.fleet == *fw.fleet) fleets.push_back(mb);
        if (fleets.empty()) {
            error(join_path(path, "fleet"), fmt::format("{} — {} is not in this fleet", quote(*fw.fleet), quote(fw.node)));
            return;
        }
        for (const auto& mb : fleets) {
            const FleetPlan& fp = plan_.fleets.at(mb.fleet);
            if (auto n = fp.nodes.find(fw.node); n != fp.nodes.end())
                for (const auto& a : n->second.addresses)
                    if (a.addr == addr) {
                        error(join_path(path, "to"),
                              fmt::format("{} is an address of {} itself (fleet {}): a forward goes to another machine", quote(fw.to),
                                          quote(fw.node), quote(mb.fleet)));
                        return;
                    }
            if (const model::Member* me = find_member(cfg_.fleets.at(mb.fleet), fw.node))
                for (const auto& r : me->routes)
                    if (r.contains(addr)) {
                        error(join_path(path, "to"),
                              fmt::format("{} lies in {}, which {} itself routes (its routes: in fleet {}): it is not reached over a fleet",
                                          quote(fw.to), r.str(), quote(fw.node), quote(mb.fleet)));
                        return;
                    }
        }
        auto reaching = fleets_reaching(cfg_, plan_, fleets, fw.node, addr);
        if (reaching.size() > 1) {
            error(path, fmt::format("{} is reached from {} over fleets {}: say which with fleet:", quote(fw.to), quote(fw.node),
                                    names_list(reaching)));
            return;
        }
        if (!reaching.empty()) return;
        std::vector<std::string> reach;
        for (const auto& mb : fleets)
            for (const auto& r : reachable_over(cfg_, plan_, mb.fleet, fw.node))
                if (r.prefix.addr.family == addr.family)
                    reach.push_back(r.announcer.empty() ? r.prefix.str() : fmt::format("{} (routes of {})", r.prefix.str(), r.announcer));
        constexpr size_t kNamed = 4;
        std::string listed = reach.empty() ? fmt::format("no IPv{} prefix", addr.is_v4() ? 4 : 6) : "";
        for (size_t i = 0; i < reach.size() && i < kNamed; ++i) listed += (i ? ", " : "") + reach[i];
        if (reach.size() > kNamed) listed += fmt::format(" and {} more", reach.size() - kNamed);
        std::string over = fw.fleet ? fmt::format("fleet {}", quote(*fw.fleet)) : "its fleets";
        error(join_path(path, "to"),
              fmt::format("{} — not reachable from {} over {} (reachable: {})", quote(fw.to), quote(fw.node), over, listed));
    }

    void check_http_routes() {
        std::map<std::string, std::string> names;
        for (size_t i = 0; i < cfg_.http_routes.size(); ++i) {
            const auto& r = cfg_.http_routes[i];
            std::string path = config::index_path("http_routes", i);
            if (!r.name.empty()) {
                auto [it, fresh] = names.emplace(r.name, path);
                if (!fresh) error(join_path(path, "name"), fmt::format("{} — the name is already used by {}", quote(r.name), it->second));
            }
            if (r.to.empty() || broken_.touches(path)) continue;
            auto url = parse_url(r.to);
            if (!url) {
                error(join_path(path, "to"), fmt::format("{} — expected a URL like http://NODE:PORT/ (scheme http or https)", quote(r.to)));
                continue;
            }
            if (cfg_.http_server == model::HttpServer::caddy) check_caddy_route(path, r, *url);
            if (r.node.empty()) continue;
            if (model::IpAddr::parse(url->host)) {
                if (fleets_of(r.node).empty() && unknown_node(r.node))
                    error(join_path(path, "node"), fmt::format("{} — unknown node; no fleet has it", quote(r.node)));
                continue;
            }
            shared_fleet(path, r.node, url->host, std::nullopt);
        }
    }

    // What a Caddy site block can say: Traefik's entry points and certificate resolvers are names
    // in Traefik's own configuration, and a Caddy upstream is an address without a path.
    void check_caddy_route(const std::string& path, const model::HttpRoute& r, const Url& url) {
        if (r.entrypoint != "web" && r.entrypoint != "websecure")
            error(join_path(path, "entrypoint"),
                  fmt::format("{} — with http_server: caddy a route is served as web (http://HOST) or websecure (https://HOST, with "
                              "Caddy's automatic HTTPS)",
                              quote(r.entrypoint)));
        if (r.certresolver)
            error(join_path(path, "certresolver"),
                  fmt::format("{} — a Traefik setting; with http_server: caddy, Caddy's own configuration chooses the certificate "
                              "issuer",
                              quote(*r.certresolver)));
        if (!url.path.empty() && url.path != "/")
            error(join_path(path, "to"),
                  fmt::format("{} — with http_server: caddy the target is an upstream address, without a path", quote(r.to)));
    }

    // The files wg-fleet writes (hosts file, HTTP route files) must not be its own secrets or
    // state, nor each other. Compared lexically here; apply compares them again where they land.
    void check_managed_paths() {
        const std::string state = normal_path(cfg_.state_dir);
        if (cfg_.keys_dir && path_within(*cfg_.keys_dir, state))
            error("keys_dir", fmt::format("{} — inside state_dir {}: published keys are read from there, and nothing inside state_dir is "
                                          "read as a public key",
                                          quote(*cfg_.keys_dir), state));
        auto check = [&](const std::string& yaml_path, const std::string& file) {
            const std::string n = normal_path(file);
            for (const auto& [fname, f] : cfg_.fleets)
                if (n == normal_path(private_key_path(cfg_, fname))) {
                    error(yaml_path, fmt::format("{} — that is the private key file of fleet {}; choose a path outside state_dir",
                                                 quote(file), quote(fname)));
                    return false;
                }
            if (path_within(n, state)) {
                error(yaml_path,
                      fmt::format("{} — inside state_dir {}, where wg-fleet keeps private keys and state; choose a path outside it",
                                  quote(file), state));
                return false;
            }
            return true;
        };
        const bool hosts_ok = check("hosts_file", cfg_.hosts_file);
        bool routes_dir_ok = true;
        if (!cfg_.http_routes.empty() && path_within(cfg_.http_routes_dir, state)) {
            error("http_routes_dir", fmt::format("{} — inside state_dir {}, where wg-fleet keeps private keys and state; choose a "
                                                 "directory outside it",
                                                 quote(cfg_.http_routes_dir), state));
            routes_dir_ok = false;
        }
        std::map<std::string, std::string> files;  // normal path -> YAML path
        if (hosts_ok) files.emplace(normal_path(cfg_.hosts_file), "hosts_file");
        std::set<std::string> names;
        for (size_t i = 0; i < cfg_.http_routes.size() && routes_dir_ok; ++i) {
            const auto& r = cfg_.http_routes[i];
            if (r.name.empty() || !names.insert(r.name).second) continue;  // a repeated name is reported as such
            const std::string path = join_path(config::index_path("http_routes", i), "name");
            const std::string file = http_route_file(cfg_, r);
            if (!check(path, file)) continue;
            auto [it, fresh] = files.emplace(normal_path(file), path);
            if (!fresh)
                error(path, fmt::format("{} — its route file {} is also {}; every managed file needs a path of its own", quote(r.name),
                                        normal_path(file), it->second));
        }
    }

    const Config& cfg_;
    const AddressPlan& plan_;
    const config::Node& tree_;
    config::Diagnostics& d_;
    const NodeIndex& index_;
    const config::Broken& broken_;
    std::map<std::string, std::map<uint32_t, std::string>> ipv4_seen_;
    std::map<std::string, std::string> exit_users_;  // node -> the fleet whose exit node it uses
};

}  // namespace

std::optional<Url> parse_url(std::string_view text) {
    Url u;
    if (std::any_of(text.begin(), text.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) return std::nullopt;
    auto sep = text.find("://");
    if (sep == std::string_view::npos) return std::nullopt;
    u.scheme = std::string(text.substr(0, sep));
    if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
    auto rest = text.substr(sep + 3);
    auto slash = rest.find('/');
    auto hostport = rest.substr(0, slash);
    u.path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
    std::string_view host = hostport, port;
    if (!hostport.empty() && hostport[0] == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = hostport.substr(1, close - 1);
        auto after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return std::nullopt;
            port = after.substr(1);
        }
    } else if (auto colon = hostport.find(':'); colon != std::string_view::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
    }
    if (host.empty()) return std::nullopt;
    if (!model::IpAddr::parse(host) && !model::valid_dns_name(host)) return std::nullopt;
    u.host = std::string(host);
    if (!port.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) return std::nullopt;
        u.port = static_cast<uint16_t>(v);
    }
    return u;
}

void validate(const Config& cfg, const AddressPlan& plan, const NodeIndex& index, const config::Node& tree, config::Diagnostics& diags,
              const config::Broken& broken) {
    Validator(cfg, plan, index, tree, diags, broken).run();
}

void validate(const Config& cfg, const AddressPlan& plan, const config::Node& tree, config::Diagnostics& diags,
              const config::Broken& broken) {
    validate(cfg, plan, index_nodes(cfg), tree, diags, broken);
}

}  // namespace wgf::plan
