#include "apply/reconcile.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "plan/sysctls.hpp"

namespace wgf::apply {
namespace {

using backend::Error;
using backend::Status;
using namespace wgf::plan;

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

// Applies ops in order, grouping consecutive WireGuard ops on one device into one set (one
// netlink transaction or UAPI exchange) and consecutive rule ops into one atomic nft batch.
class Applier {
public:
    Applier(Backends& b, KeyStore& keys, Journal* j, const ApplyOptions& o) : b_(b), keys_(keys), journal_(j), opts_(o) {}

    ApplyResult run(const Plan& plan) {
        const auto& ops = plan.ops;
        size_t i = 0;
        while (i < ops.size() && !result_.error) {
            size_t end = i + 1;
            Status s;
            std::vector<bool> partly;  // after a failed grouped set: which of its ops took effect
            if (wg_ifname(ops[i])) {
                const std::string ifname = *wg_ifname(ops[i]);
                while (end < ops.size() && wg_ifname(ops[end]) == ifname) ++end;
                s = apply_wg(ifname, ops, i, end);
                if (!s) partly = took_effect(ifname, ops, i, end);
            } else if (is_rule(ops[i])) {
                while (end < ops.size() && is_rule(ops[end])) ++end;
                s = apply_rules(ops, i, end);
            } else {
                s = apply_one(ops[i]);
                // The last address change of a run on a device: check its process, however few.
                if (s && is_address(ops[i]) && (end == ops.size() || !is_address(ops[end]) ||
                                                interface_of(ops[end]) != interface_of(ops[i])))
                    s = device_check(interface_of(ops[i]));
            }
            for (size_t k = i; k < end; ++k) {
                std::string line = describe(ops[k]);
                bool done = s || (!partly.empty() && partly[k - i]);
                if (journal_) journal_->record(line, done ? Status::ok() : s);
                (done ? result_.done : result_.not_done).push_back(line);
            }
            if (journal_) journal_->flush();
            if (!s) result_.error = s.error();
            i = end;
        }
        for (; i < ops.size(); ++i) result_.not_done.push_back(describe(ops[i]));
        return std::move(result_);
    }

private:
    static std::optional<std::string> wg_ifname(const Op& op) {
        return std::visit(overloaded{
                              [](const OpSetPrivateKey& o) { return std::optional<std::string>(o.ifname); },
                              [](const OpSetListenPort& o) { return std::optional<std::string>(o.ifname); },
                              [](const OpAddPeer& o) { return std::optional<std::string>(o.ifname); },
                              [](const OpRemovePeer& o) { return std::optional<std::string>(o.ifname); },
                              [](const OpUpdatePeer& o) { return std::optional<std::string>(o.ifname); },
                              [](const auto&) { return std::optional<std::string>(); },
                          },
                          op);
    }
    // A set that failed may have applied part of its change: the kernel applies a large set in
    // several messages and a userspace implementation applies the UAPI lines in order until one
    // fails. The device as it is now says which ops took effect; if it cannot be read, none
    // is claimed.
    std::vector<bool> took_effect(const std::string& ifname, const std::vector<Op>& ops, size_t from, size_t to) {
        std::vector<bool> out(to - from, false);
        auto dev = b_.wg.read_device(ifname);
        if (!dev) return out;
        const model::WgInterface& d = dev->device;
        auto peer = [&](const model::Key& k) -> const model::WgPeer* {
            auto it = d.peers.find(k);
            return it == d.peers.end() ? nullptr : &it->second;
        };
        for (size_t k = from; k < to; ++k) {
            out[k - from] = std::visit(
                overloaded{
                    [&](const OpSetPrivateKey& o) { return d.public_key == o.public_key; },
                    [&](const OpSetListenPort& o) { return d.listen_port == o.port; },
                    [&](const OpAddPeer& o) {
                        const auto* p = peer(o.peer.public_key);
                        return p && (!o.peer.endpoint || p->endpoint == o.peer.endpoint) && p->keepalive == o.peer.keepalive &&
                               p->allowed_ips == o.peer.allowed_ips;
                    },
                    [&](const OpRemovePeer& o) { return peer(o.public_key) == nullptr; },
                    [&](const OpUpdatePeer& o) {
                        const auto* p = peer(o.public_key);
                        return p && (!o.endpoint || p->endpoint == o.endpoint) && (!o.keepalive || p->keepalive == *o.keepalive) &&
                               (!o.allowed_ips || p->allowed_ips == *o.allowed_ips);
                    },
                    [](const auto&) { return false; },
                },
                ops[k]);
        }
        // A set applies in order: an op on a peer that took effect means every earlier op on
        // that peer did (a release superseded by its claim no longer shows on its own).
        auto peer_of = [](const Op& op) -> std::optional<model::Key> {
            if (auto* o = std::get_if<OpUpdatePeer>(&op)) return o->public_key;
            if (auto* o = std::get_if<OpAddPeer>(&op)) return o->peer.public_key;
            if (auto* o = std::get_if<OpRemovePeer>(&op)) return o->public_key;
            return std::nullopt;
        };
        for (size_t k = to; k-- > from;) {
            if (!out[k - from]) continue;
            auto key = peer_of(ops[k]);
            if (!key) continue;
            for (size_t j = from; j < k; ++j)
                if (peer_of(ops[j]) == key) out[j - from] = true;
        }
        return out;
    }

    static bool is_rule(const Op& op) { return std::holds_alternative<OpAddRule>(op) || std::holds_alternative<OpDelRule>(op); }

    Status apply_wg(const std::string& ifname, const std::vector<Op>& ops, size_t from, size_t to) {
        backend::WgDeviceChange c;
        c.ifname = ifname;
        // A device created in this apply has no peers to keep: set them all at once.
        c.replace_peers = created_.count(ifname) > 0;
        for (size_t k = from; k < to; ++k) {
            const Op& op = ops[k];
            if (auto* o = std::get_if<OpSetPrivateKey>(&op)) {
                if (o->generate) {
                    // Planned as a generation: the key is made now, right before the device gets it.
                    auto key = keys_.load_or_generate(o->key_file);
                    if (!key) return key.error();
                    c.private_key = *key;
                    continue;
                }
                auto key = keys_.load(o->key_file);
                if (!key) return key.error();
                if (!key->has_value()) return Error{ENOENT, fmt::format("set private key of {}: {} does not exist", ifname, o->key_file)};
                c.private_key = **key;
            } else if (auto* o = std::get_if<OpSetListenPort>(&op)) {
                c.listen_port = o->port;
            } else if (auto* o = std::get_if<OpAddPeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = o->peer.public_key;
                p.endpoint = o->peer.endpoint;
                p.keepalive = o->peer.keepalive;
                p.replace_allowed_ips = true;
                p.allowed_ips = o->peer.allowed_ips.prefixes();
                c.peers.push_back(std::move(p));
            } else if (auto* o = std::get_if<OpRemovePeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = o->public_key;
                p.remove = true;
                c.peers.push_back(std::move(p));
            } else if (auto* o = std::get_if<OpUpdatePeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = o->public_key;
                p.update_only = true;
                p.endpoint = o->endpoint;
                p.keepalive = o->keepalive;
                if (o->allowed_ips) {
                    p.replace_allowed_ips = true;
                    p.allowed_ips = o->allowed_ips->prefixes();
                }
                c.peers.push_back(std::move(p));
            }
        }
        return b_.wg.set_device(c);
    }

    Status apply_rules(const std::vector<Op>& ops, size_t from, size_t to) {
        backend::FirewallChange c;
        for (size_t k = from; k < to; ++k) {
            if (auto* d = std::get_if<OpDelRule>(&ops[k])) c.remove.push_back(d->id);
            else if (auto* a = std::get_if<OpAddRule>(&ops[k])) c.add.push_back(a->rule);
        }
        return b_.firewall.apply(c);
    }

    static bool is_address(const Op& op) {
        return std::holds_alternative<OpAddAddress>(op) || std::holds_alternative<OpDelAddress>(op);
    }

    Status device_check(const std::string& ifname) {
        if (!opts_.device_alive || opts_.device_alive(ifname)) return Status::ok();
        return Error{EIO, fmt::format("the userspace WireGuard process of {} exited during address changes", ifname)};
    }

    // Every `address_chunk` address changes on a device, check that its process survived.
    Status address_checkpoint(const std::string& ifname) {
        if (++address_ops_[ifname] % std::max<size_t>(1, opts_.address_chunk) != 0) return Status::ok();
        return device_check(ifname);
    }

    Status apply_one(const Op& op) {
        return std::visit(
            overloaded{
                [&](const OpCreateDevice& o) {
                    created_.insert(o.ifname);
                    return b_.wg.create_device(o.ifname);
                },
                [&](const OpDeleteDevice& o) { return b_.wg.delete_device(o.ifname); },
                [&](const OpSetMtu& o) { return b_.links.set_mtu(o.ifname, o.mtu); },
                [&](const OpSetUp& o) { return b_.links.set_up(o.ifname, true); },
                [&](const OpAddAddress& o) {
                    auto s = b_.links.add_address(o.ifname, o.addr);
                    return s ? address_checkpoint(o.ifname) : s;
                },
                [&](const OpDelAddress& o) {
                    auto s = b_.links.del_address(o.ifname, o.addr);
                    return s ? address_checkpoint(o.ifname) : s;
                },
                [&](const OpAddRoute& o) { return b_.links.add_route(o.route); },
                [&](const OpDelRoute& o) { return b_.links.del_route(o.route); },
                [&](const OpSetSysctl& o) { return b_.sysctls.write(o.key, o.value); },
                [&](const OpWriteFile& o) { return b_.files.write(o.file); },
                [&](const OpRemoveFile& o) { return b_.files.remove(o.path); },
                [&](const auto& o) -> Status { return Error{EINVAL, fmt::format("internal: unexpected operation {}", kind(Op{o}))}; },
            },
            op);
    }

    Backends& b_;
    KeyStore& keys_;
    Journal* journal_;
    const ApplyOptions& opts_;
    ApplyResult result_;
    std::set<std::string> created_;
    std::map<std::string, size_t> address_ops_;
};

}  // namespace

std::optional<model::IpAddr> SystemResolver::resolve(const std::string& host) {
    if (auto a = model::IpAddr::parse(host)) return a;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return std::nullopt;
    std::optional<model::IpAddr> out;
    for (addrinfo* ai = res; ai && !out; ai = ai->ai_next) {
        model::IpAddr a;
        if (ai->ai_family == AF_INET) {
            a.family = 4;
            std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
            out = a;
        } else if (ai->ai_family == AF_INET6) {
            a.family = 6;
            std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
            out = a;
        }
    }
    freeaddrinfo(res);
    return out;
}

void resolve_endpoints(model::HostState& desired, const model::Labels& labels, Resolver& resolver, std::vector<std::string>& warnings) {
    std::map<std::string, std::optional<model::IpAddr>> cache;
    for (auto& [ifname, w] : desired.interfaces)
        for (auto& [key, p] : w.peers) {
            if (!p.endpoint || model::IpAddr::parse(p.endpoint->host)) continue;
            auto it = cache.find(p.endpoint->host);
            if (it == cache.end()) it = cache.emplace(p.endpoint->host, resolver.resolve(p.endpoint->host)).first;
            if (it->second) {
                p.endpoint->host = it->second->str();
            } else {
                warnings.push_back(fmt::format("peer {} on {}: endpoint {} does not resolve; left without an endpoint until it does",
                                               labels.peer_name(ifname, key), ifname, p.endpoint->str()));
                p.endpoint.reset();
            }
        }
}

backend::Status read_interfaces(Backends& b, const std::set<std::string>& names, const std::set<std::string>& desired_interfaces,
                                Live& live, model::Timings* timings) {
    for (const auto& name : names) {
        auto link = b.links.read_link(name);
        if (!link) return link.error();
        if (!link->has_value()) continue;
        auto dev = b.wg.read_device(name);
        if (!dev) {
            if (dev.error().code == ENODEV && desired_interfaces.count(name))
                return Error{EEXIST, fmt::format("interface {} exists but is not a WireGuard device; wg-fleet will not take it over", name)};
            if (dev.error().code == ENODEV) continue;
            return dev.error();
        }
        model::WgInterface w = std::move(dev->device);
        w.name = name;
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

backend::Status read_tables(Backends& b, const std::set<std::string>& devices, Live& live, model::Timings* timings) {
    auto routes = b.links.read_routes(devices);
    if (!routes) return routes.error();
    live.state.routes = std::move(*routes);
    if (timings) timings->lap("routes");
    auto rules = b.firewall.read();
    if (!rules) return rules.error();
    live.state.firewall = std::move(*rules);
    if (timings) timings->lap("firewall");
    return {};
}

backend::Result<Live> read_live_bulk(Backends& b, const std::set<std::string>& desired_interfaces, int64_t now,
                                     model::Timings* timings) {
    Live live;
    live.facts.now = now;
    if (auto s = read_interfaces(b, desired_interfaces, desired_interfaces, live, timings); !s) return s.error();
    if (auto s = read_tables(b, desired_interfaces, live, timings); !s) return s.error();
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

backend::Result<Live> read_live(Backends& b, const model::HostState& desired, const plan::Ownership& owned, int64_t now) {
    auto live = read_live_bulk(b, interface_names(desired), now);
    if (live)
        if (auto s = read_live_rest(b, desired, owned, *live); !s) return s.error();
    return live;
}

ApplyResult apply_plan(Backends& b, const Plan& plan, KeyStore& keys, Journal* journal, const ApplyOptions& opts) {
    return Applier(b, keys, journal, opts).run(plan);
}

}  // namespace wgf::apply
