#include "apply/read_live.hpp"

#include <array>
#include <cerrno>

#include <fmt/format.h>
#include <sodium.h>

#include "plan/sysctls.hpp"

namespace wgf::apply {

using backend::Error;

backend::Status read_interfaces(Backends& b, const std::set<std::string>& names, const std::set<std::string>& desired_interfaces,
                                Live& live, model::Timings* timings) {
    for (const auto& name : names) {
        auto link = b.links.read_link(name);
        if (!link) return link.error();
        if (!link->has_value()) continue;
        auto dev = b.wg.read_device(name);
        if (!dev) {
            if (dev.error().code == ENODEV && desired_interfaces.count(name))
                return Error{EEXIST,
                             fmt::format("interface {} exists but is not a WireGuard device; wg-fleet will not take it over", name)};
            if (dev.error().code == ENODEV) continue;
            return dev.error();
        }
        model::WgInterface w = std::move(dev->device);
        w.name = name;
        w.fwmark = dev->fwmark.value_or(0);
        w.mtu = (*link)->mtu;
        w.up = (*link)->up;
        auto addrs = b.links.read_addresses(name);
        if (!addrs) return addrs.error();
        w.addresses = std::move(*addrs);
        auto& hs = live.facts.last_handshake[name];
        for (const auto& [k, st] : dev->stats) hs.emplace_hint(hs.end(), k, st.last_handshake);  // both sorted by key
        live.stats[name] = std::move(dev->stats);
        live.state.interfaces.insert_or_assign(name, std::move(w));
        if (timings) timings->lap("device " + name);
    }
    return {};
}

namespace {

// What a firewall read found, into the live state.
void take_firewall(Live& live, backend::FirewallLive&& rules) {
    live.state.firewall = std::move(rules.rules);
    live.state.firewall_damage = std::move(rules.damage);
    live.facts.foreign_drops = std::move(rules.foreign_drops);
    live.facts.legacy_tables = std::move(rules.legacy_tables);
    live.state.foreign_rules = std::move(rules.foreign_rules);
    live.firewall_generation = std::move(rules.generation);
    live.firewall_kept.reset();
    live.firewall_from_kept = false;
}

}  // namespace

backend::Status read_tables(Backends& b, const std::set<std::string>& devices, Live& live, model::Timings* timings,
                            const backend::KeptFirewall* kept) {
    auto routes = b.links.read_routes(devices);
    if (!routes) return routes.error();
    live.state.routes = std::move(*routes);
    auto policy = b.links.read_rules();
    if (!policy) return policy.error();
    live.state.rules = std::move(*policy);
    if (timings) timings->lap("routes");
    auto rules = kept ? b.firewall.read_if_changed(kept->generation) : b.firewall.read();
    if (!rules) return rules.error();
    const bool unchanged = kept && rules->table_unchanged;
    take_firewall(live, std::move(*rules));
    if (unchanged) live.firewall_kept = *kept;
    if (timings) timings->lap(unchanged ? "firewall (table unchanged)" : "firewall");
    return {};
}

std::string firewall_digest(const std::map<std::string, model::FwRule>& rules) {
    // Every field of every rule, fixed-size fields as they are and strings with their length:
    // two different lists never encode the same.
    std::string buf = "wg-fleet firewall rules 1";
    buf.reserve(rules.size() * 96);
    auto raw = [&](const auto& v) { buf.append(reinterpret_cast<const char*>(&v), sizeof v); };
    auto str = [&](const std::string& v) {
        raw(static_cast<uint32_t>(v.size()));
        buf += v;
    };
    auto addr = [&](const std::optional<model::IpAddr>& a) {
        raw(static_cast<uint8_t>(a ? 1 : 0));
        if (a) {
            raw(a->family);
            raw(a->bytes);
        }
    };
    raw(static_cast<uint64_t>(rules.size()));
    for (const auto& [id, r] : rules) {
        str(id);
        str(r.id);
        raw(static_cast<uint8_t>(r.kind));
        raw(static_cast<uint8_t>(r.proto));
        raw(r.port);
        raw(r.to_port);
        str(r.iif);
        str(r.oif);
        addr(r.to);
        addr(r.from);
        raw(static_cast<uint32_t>(r.not_oif.size()));
        for (const auto& o : r.not_oif) str(o);
    }
    std::array<unsigned char, crypto_generichash_BYTES> h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(buf.data()), buf.size(), nullptr, 0);
    std::string hex(h.size() * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
    hex.pop_back();
    return hex;
}

std::optional<backend::KeptFirewall> firewall_to_keep(const Live& live, const model::HostState& desired) {
    if (live.firewall_from_kept || live.firewall_kept || live.firewall_generation.empty() || !live.state.firewall_damage.empty() ||
        live.state.firewall != desired.firewall)
        return std::nullopt;
    return backend::KeptFirewall{.generation = live.firewall_generation, .digest = firewall_digest(live.state.firewall)};
}

backend::Status settle_kept_firewall(Backends& b, const model::HostState& desired, Live& live, const KnownFirewall& known) {
    if (!live.firewall_kept) return {};
    const std::string kept = std::move(live.firewall_kept->digest);
    live.firewall_kept.reset();
    if (firewall_digest(desired.firewall) == kept) {
        live.state.firewall = desired.firewall;
        live.firewall_from_kept = true;
        return {};
    }
    if (known.rules && !known.digest.empty() && known.digest == kept) {
        live.state.firewall = std::move(*known.rules);
        live.firewall_from_kept = true;
        return {};
    }
    auto rules = b.firewall.read();
    if (!rules) return rules.error();
    take_firewall(live, std::move(*rules));
    return {};
}

backend::Result<Live> read_live_bulk(Backends& b, const std::set<std::string>& desired_interfaces, int64_t now, model::Timings* timings,
                                     const backend::KeptFirewall* kept) {
    Live live;
    live.facts.now = now;
    if (auto s = read_interfaces(b, desired_interfaces, desired_interfaces, live, timings); !s) return s.error();
    if (auto s = read_tables(b, desired_interfaces, live, timings, kept); !s) return s.error();
    return live;
}

backend::Status read_sysctls(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live) {
    // A sysctl that cannot be read (an interface's, after the interface went) is absent.
    auto read = [&](const std::string& k) {
        if (auto r = b.sysctls.read(k)) live.state.sysctls[k] = *r;
    };
    for (const auto& [k, v] : desired.sysctls) read(k);
    for (const auto& [k, rec] : owned.sysctls) read(k);
    // plan::complete_sysctls needs forwarding and every interface's accept_ra when forwarding
    // is wanted or something wg-fleet changed may have to go back.
    if (desired.sysctls.count(plan::kIpv6Forwarding) || !owned.sysctls.empty()) {
        read(plan::kIpv6Forwarding);
        auto names = b.sysctls.list(plan::kIpv6Conf);
        if (!names) return names.error();
        for (const auto& n : *names) read(plan::accept_ra_key(n));
    }
    return {};
}

backend::Status read_live_rest(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live) {
    // Interfaces we own but no longer want: the bulk read named only the desired ones.
    const auto desired_names = interface_names(desired);
    std::set<std::string> leftover;
    for (const auto& n : owned.interfaces)
        if (!desired_names.count(n)) leftover.insert(n);
    if (auto s = read_interfaces(b, leftover, desired_names, live); !s) return s;
    if (!leftover.empty()) {
        auto routes = b.links.read_routes(leftover);
        if (!routes) return routes.error();
        live.state.routes.merge(*routes);
    }
    if (auto s = read_sysctls(b, desired, owned, live); !s) return s;
    std::set<std::string> paths;
    for (const auto& [p, f] : desired.files) paths.insert(p);
    paths.insert(owned.files.begin(), owned.files.end());
    for (const auto& p : paths) {
        auto f = b.files.read(p);
        if (!f) return f.error();
        if (!f->has_value()) continue;
        if ((*f)->has_marker && (*f)->not_regular.empty()) live.state.files.emplace(p, std::move((*f)->file));
        else live.facts.foreign_files.emplace(p, (*f)->not_regular);
    }
    return {};
}

std::set<std::string> interface_names(const model::HostState& desired) {
    std::set<std::string> names;
    for (const auto& [n, w] : desired.interfaces) names.insert(n);
    return names;
}

backend::Result<Live> read_live(Backends& b, const model::HostState& desired, const plan::Ownership& owned, int64_t now,
                                const backend::KeptFirewall* kept, model::Timings* timings) {
    auto live = read_live_bulk(b, interface_names(desired), now, timings, kept);
    if (live)
        if (auto s = read_live_rest(b, desired, owned, *live); !s) return s.error();
    if (live)
        if (auto s = settle_kept_firewall(b, desired, *live); !s) return s.error();
    return live;
}

}  // namespace wgf::apply
