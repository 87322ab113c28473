#include "plan/render_networkd.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "plan/ops.hpp"

namespace wgf::plan {
namespace {

using model::Prefix;
using model::WgInterface;
using model::WgPeer;

std::string file_base(const std::string& ifname) { return "50-wg-fleet-" + ifname; }

std::string header(const char* what, const std::string& node, const model::InterfaceLabels& l, const std::string& ifname) {
    return fmt::format("# systemd-networkd {} of {} in fleet {} (interface {}), rendered by wg-fleet.\n", what, node, l.fleet, ifname);
}

std::string join_prefixes(const model::PrefixSet& set) {
    std::string out;
    for (const auto& p : set) {
        if (!out.empty()) out += ',';  // the separator systemd.netdev(5) documents for AllowedIPs=
        out += p.str();
    }
    return out;
}

std::string render_netdev(const WgInterface& w, const model::InterfaceLabels& l, const std::string& node) {
    std::string out = header("netdev", node, l, w.name);
    // networkd reads the key file itself, as user systemd-network (systemd.netdev(5)).
    out += "# The private key stays in its file. networkd reads it as user systemd-network, which must be\n";
    out += "# able to read it and enter its directory (e.g. group systemd-network, modes 0640 and 0710).\n";
    out += fmt::format("[NetDev]\nName={}\nKind=wireguard\n", w.name);
    if (w.mtu) out += fmt::format("MTUBytes={}\n", *w.mtu);
    out += fmt::format("\n[WireGuard]\nPrivateKeyFile={}\n", l.private_key_file);
    // Unset, the kernel picks a port, as it does for wg-fleet's peers.
    if (w.listen_port) out += fmt::format("ListenPort={}\n", *w.listen_port);
    // An exit node's: the tunnel's own packets carry the mark, so the policy rules of the
    // .network file let them out through the main table's default route.
    if (w.fwmark) out += fmt::format("FirewallMark={}\n", w.fwmark);
    // Peers in name order, which is how people read a config.
    std::vector<std::pair<const std::string*, const WgPeer*>> peers;
    peers.reserve(w.peers.size());
    for (const auto& [k, p] : w.peers) peers.emplace_back(&l.peer_names.at(k), &p);
    std::sort(peers.begin(), peers.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
    for (const auto& [name, p] : peers) {
        out += fmt::format("\n[WireGuardPeer]\n# {}\nPublicKey={}\n", *name, p->public_key.base64());
        if (!p->allowed_ips.empty()) out += "AllowedIPs=" + join_prefixes(p->allowed_ips) + "\n";
        if (p->endpoint) out += "Endpoint=" + p->endpoint->str() + "\n";
        if (p->keepalive) out += fmt::format("PersistentKeepalive={}\n", p->keepalive);
    }
    for (const auto& n : l.pending) out += fmt::format("\n# {}: no public key yet (pending)\n", n);
    return out;
}

// The IPForward= value for the forwarding sysctls wanted; empty for none. networkd's setting is
// global and one-way (systemd.network(5)), as wg-fleet's sysctls are while it runs.
std::string ip_forward(const std::map<std::string, std::string>& sysctls) {
    auto on = [&](const char* key) {
        auto it = sysctls.find(key);
        return it != sysctls.end() && it->second == "1";
    };
    bool v4 = on("net/ipv4/ip_forward"), v6 = on("net/ipv6/conf/all/forwarding");
    return v4 && v6 ? "yes" : v4 ? "ipv4" : v6 ? "ipv6" : "";
}

std::string render_network(const model::HostState& hs, const WgInterface& w, const model::InterfaceLabels& l, const std::string& node) {
    std::string out = header("network", node, l, w.name);
    if (std::any_of(w.addresses.begin(), w.addresses.end(), [](const Prefix& a) { return a.addr.is_v4(); }))
        out += "# networkd turns promote_secondaries on for every link it configures with IPv4.\n";
    auto rules = firewall_rules_of(hs, w);
    const auto valid_mark = hs.sysctls.find("net/ipv4/conf/all/src_valid_mark");
    const bool mark_sysctl = w.fwmark && valid_mark != hs.sysctls.end();
    if (!rules.empty() || !hs.files.empty() || mark_sysctl) {
        out += "# Not expressed here (wg-fleet applies them; under networkd, a firewall and other tools must):\n";
        if (mark_sysctl) out += fmt::format("#   sysctl net/ipv4/conf/all/src_valid_mark = {}\n", valid_mark->second);
        for (const auto* r : rules) out += fmt::format("#   firewall rule {}: {}\n", r->id, describe_rule(*r));
        for (const auto& [path, f] : hs.files) out += fmt::format("#   file {}\n", path);
    }
    out += fmt::format("[Match]\nName={}\n", w.name);
    std::string network;
    for (const auto& a : w.addresses) network += "Address=" + a.str() + "\n";
    if (auto fwd = ip_forward(hs.sysctls); !fwd.empty()) network += "IPForward=" + fwd + "\n";
    if (!network.empty()) out += "\n[Network]\n" + network;
    for (const auto& r : hs.routes) {
        if (r.dev != w.name) continue;
        out += fmt::format("\n[Route]\nDestination={}\n", r.dst.str());
        if (r.src) out += fmt::format("PreferredSource={}\n", r.src->str());
        if (r.table != model::kMainTable) out += fmt::format("Table={}\n", r.table);
    }
    // An exit node's rules (wg-quick's): they belong to the interface whose mark they test.
    if (w.fwmark)
        for (const auto& r : hs.rules) {
            out += fmt::format("\n[RoutingPolicyRule]\nFamily=ipv{}\nPriority={}\n", r.family, r.priority);
            if (r.fwmark) out += fmt::format("FirewallMark={}\n", r.fwmark);
            if (r.invert) out += "InvertRule=yes\n";
            out += r.table == model::kMainTable ? std::string("Table=main\n") : fmt::format("Table={}\n", r.table);
            if (r.suppress_prefixlength) out += fmt::format("SuppressPrefixLength={}\n", *r.suppress_prefixlength);
        }
    return out;
}

}  // namespace

std::vector<NetworkdFile> render_networkd(const Desired& desired, const std::string& node) {
    std::vector<NetworkdFile> out;
    out.reserve(desired.state.interfaces.size() * 2);
    for (const auto& [name, w] : desired.state.interfaces) {
        const auto& l = desired.labels.of(name);
        out.push_back({.name = file_base(name) + ".netdev", .content = render_netdev(w, l, node)});
        out.push_back({.name = file_base(name) + ".network", .content = render_network(desired.state, w, l, node)});
    }
    return out;
}

}  // namespace wgf::plan
