#include "plan/render_nixos.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace wgf::plan {
namespace {

using model::FwKind;
using model::FwRule;
using model::Route;
using model::WgInterface;
using model::WgPeer;

// Text for a `#` comment: one line whatever the input holds.
std::string comment_text(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return out;
}

std::string nix_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (const auto& i : items) {
        out += ' ';
        out += nix_string(i);
    }
    return out + (items.empty() ? "]" : " ]");
}

std::string prefixes(const model::PrefixSet& set) {
    std::vector<std::string> v;
    for (const auto& p : set) v.push_back(p.str());
    return nix_list(v);
}

// The writer keeps the indentation so the functions below read as the module does.
class Module {
public:
    void line(std::string_view text) {
        if (!text.empty()) out_.append(static_cast<size_t>(depth_) * 2, ' ');
        out_ += text;
        out_ += '\n';
    }
    void note(std::string_view text) { line("# " + comment_text(text)); }
    void open(std::string_view text) {
        line(text);
        ++depth_;
    }
    void close(std::string_view text) {
        --depth_;
        line(text);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
    int depth_ = 0;
};

struct Peer {
    const std::string* name;
    const WgPeer* peer;
};

std::vector<Peer> peers_by_name(const WgInterface& w, const model::InterfaceLabels& labels) {
    std::vector<Peer> v;
    v.reserve(w.peers.size());
    for (const auto& [k, p] : w.peers) v.push_back({.name = &labels.peer_names.at(k), .peer = &p});
    std::sort(v.begin(), v.end(), [](const Peer& a, const Peer& b) { return *a.name < *b.name; });
    return v;
}

// A word for the shell that runs postSetup: an interface name may hold `$`, `;` or quotes.
std::string shell_word(const std::string& s) {
    bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
    if (plain) return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string route_command(const Route& r) {
    std::string cmd = fmt::format("ip -{} route replace {} dev {}", r.dst.addr.is_v4() ? 4 : 6, r.dst.str(), shell_word(r.dev));
    if (r.src) cmd += " src " + r.src->str();
    if (r.table != model::kMainTable) cmd += fmt::format(" table {}", r.table);
    return cmd;
}

// An exit node's policy rule as `ip rule` says it, with wg-fleet's protocol (add or del).
std::string rule_command(const model::PolicyRule& r, const char* verb) {
    std::string cmd = fmt::format("ip -{} rule {} priority {}", r.family, verb, r.priority);
    if (r.fwmark) cmd += fmt::format("{} fwmark {:#x}", r.invert ? " not" : "", r.fwmark);
    cmd += r.table == model::kMainTable ? std::string(" table main") : fmt::format(" table {}", r.table);
    if (r.suppress_prefixlength) cmd += fmt::format(" suppress_prefixlength {}", *r.suppress_prefixlength);
    return cmd + " protocol 87";
}

void render_interface(Module& m, const Fleetwide& fw, const std::string& node, const WgInterface& w, const model::InterfaceLabels& labels,
                      const std::vector<Route>& routes, const std::set<model::PolicyRule>& rules) {
    m.open(fmt::format("networking.wireguard.interfaces.{} = {{", nix_string(w.name)));
    m.note(fmt::format("fleet {}", labels.fleet));
    // Addresses in plan order, as `addresses` and wg-quick list them.
    std::vector<std::string> ips;
    const auto& planned = fw.plan.fleets.at(labels.fleet).nodes;
    if (auto na = planned.find(node); na != planned.end())
        for (const auto& a : na->second.addresses) ips.push_back(a.str());
    m.line("ips = " + nix_list(ips) + ";");
    if (w.listen_port) m.line(fmt::format("listenPort = {};", *w.listen_port));
    m.note("The private key is read from this file, never put in the Nix store; NixOS generates it");
    m.note("there when missing, and `wg-fleet keygen` publishes its public key to the keys_dir.");
    m.line("privateKeyFile = " + nix_string(labels.private_key_file) + ";");
    m.line("generatePrivateKeyFile = true;");
    if (w.mtu) m.line(fmt::format("mtu = {};", *w.mtu));
    // NixOS routes every allowed IP of a peer; wg-fleet routes those outside the interface's own
    // subnets, which the kernel reaches the same way. A preferred source is beyond the peers'
    // routes, so an interface that needs one gets exactly wg-fleet's routes in postSetup (after
    // its addresses and link are up).
    bool with_src = std::any_of(routes.begin(), routes.end(), [](const Route& r) { return r.src.has_value(); });
    if (w.fwmark) {
        // An exit node: wg-quick's policy routing, which the module's table option alone cannot
        // say (it moves every allowed IP's route, the fleet's too, out of the main table).
        m.note("An exit node: the device marks its own packets; the default routes go to a table of their");
        m.note("own, reached by every unmarked packet the main table has no specific route for.");
        m.line(fmt::format("fwMark = \"{:#x}\";", w.fwmark));
    }
    if (with_src || w.fwmark) {
        if (with_src) {
            m.note("Routes with a preferred source address (the designated controller's subnet), which");
            m.note("allowedIPsAsRoutes cannot express: wg-fleet's own routes instead.");
        }
        m.line("allowedIPsAsRoutes = false;");
        m.open("postSetup = builtins.concatStringsSep \"\\n\" [");
        for (const auto& r : routes) m.line(nix_string(route_command(r)));
        if (w.fwmark)
            for (const auto& r : rules) m.line(nix_string(rule_command(r, "add")));
        m.close("];");
        if (w.fwmark && !rules.empty()) {
            m.open("postShutdown = builtins.concatStringsSep \"\\n\" [");
            for (const auto& r : rules) m.line(nix_string(rule_command(r, "del")));
            m.close("];");
        }
    } else {
        m.line("allowedIPsAsRoutes = true;");
    }
    m.open("peers = [");
    for (const auto& [name, p] : peers_by_name(w, labels)) {
        m.note(*name);
        m.open("{");
        m.line("publicKey = " + nix_string(p->public_key.base64()) + ";");
        m.line("allowedIPs = " + prefixes(p->allowed_ips) + ";");
        if (p->endpoint && !model::IpAddr::parse(p->endpoint->host))
            m.note("A host name: resolved once when the peer is set up (wg-fleet resolves it on every run).");
        if (p->endpoint) m.line("endpoint = " + nix_string(p->endpoint->str()) + ";");
        if (p->keepalive) m.line(fmt::format("persistentKeepalive = {};", p->keepalive));
        m.close("}");
    }
    for (const auto& n : labels.pending) m.note(fmt::format("{}: no public key yet (pending): render again once it is published", n));
    m.close("];");
    m.close("};");
}

// "net/ipv4/ip_forward" -> "net.ipv4.ip_forward"
std::string sysctl_name(std::string key) {
    std::replace(key.begin(), key.end(), '/', '.');
    return key;
}

void render_sysctls(Module& m, const model::HostState& hs) {
    std::vector<std::pair<std::string, std::string>> set;
    bool promote = false;
    for (const auto& [key, value] : hs.sysctls) {
        if (key.ends_with("/promote_secondaries")) promote = true;
        else set.emplace_back(sysctl_name(key), value);
    }
    if (promote) {
        m.note("promote_secondaries of the WireGuard interfaces is not set: wg-fleet needs it to delete one");
        m.note("address of a live interface, while NixOS recreates the interface on every change.");
    }
    if (hs.sysctls.count("net/ipv6/conf/all/forwarding")) {
        m.note("With IPv6 forwarding on, wg-fleet also raises accept_ra from 1 to 2 on the interfaces that");
        m.note("take router advertisements from the kernel; that depends on the machine and has no option");
        m.note("here (NixOS's dhcpcd and systemd-networkd take router advertisements themselves).");
    }
    if (set.empty()) return;
    m.open("boot.kernel.sysctl = {");
    for (const auto& [k, v] : set) {
        bool number = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
        m.line(fmt::format("{} = {};", nix_string(k), number ? v : nix_string(v)));
    }
    m.close("};");
}

void render_hosts(Module& m, const Fleetwide& fw, const std::string& node) {
    // One address may carry several names; the addresses keep the order the hosts file has.
    std::vector<std::pair<std::string, std::vector<std::string>>> hosts;
    std::map<std::string, size_t> at;
    for (const auto& e : render_hosts_entries(fw, node)) {
        auto [it, added] = at.emplace(e.addr.str(), hosts.size());
        if (added) hosts.push_back({e.addr.str(), {}});
        hosts[it->second].second.push_back(e.name);
    }
    if (hosts.empty()) return;
    m.open("networking.hosts = {");
    for (const auto& [addr, names] : hosts) m.line(fmt::format("{} = {};", nix_string(addr), nix_list(names)));
    m.close("};");
}

// Names are interface names and rule ids, which hold no quote (valid_ifname, node names).
std::string nft_quote(std::string_view s) { return fmt::format("\"{}\"", s); }

std::string nft_rule(const FwRule& r) {
    const char* proto = r.proto == model::Proto::tcp ? "tcp" : "udp";
    switch (r.kind) {
        case FwKind::dnat: {
            bool v4 = r.to->is_v4();
            std::string to = v4 ? r.to->str() : fmt::format("[{}]", r.to->str());
            return fmt::format("meta nfproto {} {} dport {} dnat {} to {}:{} comment {}", v4 ? "ipv4" : "ipv6", proto, r.port,
                               v4 ? "ip" : "ip6", to, r.to_port, nft_quote(r.id));
        }
        case FwKind::masquerade: return fmt::format("oifname {} ct status dnat masquerade comment {}", nft_quote(r.oif), nft_quote(r.id));
        case FwKind::forward:
            return r.oif.empty()
                       ? fmt::format("iifname {} accept comment {}", nft_quote(r.iif), nft_quote(r.id))
                       : fmt::format("iifname {} oifname {} accept comment {}", nft_quote(r.iif), nft_quote(r.oif), nft_quote(r.id));
        case FwKind::accept_udp: return fmt::format("udp dport {} accept comment {}", r.port, nft_quote(r.id));
        case FwKind::exit_forward:
            return fmt::format("iifname {} {} saddr {} accept comment {}", nft_quote(r.iif), r.from->is_v4() ? "ip" : "ip6", r.from->str(),
                               nft_quote(r.id));
        case FwKind::exit_masquerade: {
            std::string ifs;
            for (const auto& i : r.not_oif) ifs += (ifs.empty() ? "" : ", ") + nft_quote(i);
            return fmt::format("{} saddr {} oifname != {{ {} }} masquerade comment {}", r.from->is_v4() ? "ip" : "ip6", r.from->str(), ifs,
                               nft_quote(r.id));
        }
    }
    return {};
}

// wg-fleet's table `inet wg-fleet` in NixOS's nftables: its NAT chains as they are (the rules
// name no input interface, as wg-fleet's do not); the accept rules go to NixOS's own chains.
void render_firewall(Module& m, const model::HostState& hs) {
    std::set<uint16_t> udp;
    std::vector<const FwRule*> forward, dnat, masquerade;
    for (const auto& [id, r] : hs.firewall) {
        switch (r.kind) {
            case FwKind::accept_udp: udp.insert(r.port); break;
            case FwKind::forward:
            case FwKind::exit_forward: forward.push_back(&r); break;
            case FwKind::dnat: dnat.push_back(&r); break;
            case FwKind::masquerade:
            case FwKind::exit_masquerade: masquerade.push_back(&r); break;
        }
    }
    if (!udp.empty()) {
        std::string ports;
        for (auto p : udp) ports += fmt::format(" {}", p);
        m.line("networking.firewall.allowedUDPPorts = [" + ports + " ];");
    }
    if (!forward.empty()) {
        m.note("NixOS filters forwarded packets only with networking.firewall.filterForward (nftables).");
        m.open(
            "networking.firewall.extraForwardRules = lib.mkIf config.networking.firewall.filterForward (builtins.concatStringsSep \"\\n\" [");
        for (const auto* r : forward) m.line(nix_string(nft_rule(*r)));
        m.close("]);");
    }
    if (dnat.empty() && masquerade.empty()) return;
    m.note("Port forwards: wg-fleet's NAT chains, which take effect with NixOS's nftables (which also");
    m.note("moves NixOS's firewall to nftables). networking.nat cannot say them: its forwardPorts need");
    m.note("networking.nat.externalInterface, and wg-fleet's forwards match every input interface.");
    m.line("networking.nftables.enable = lib.mkDefault true;");
    m.open("networking.nftables.tables.\"wg-fleet\" = {");
    m.line("family = \"inet\";");
    std::vector<std::string> content;
    auto chain = [&](const char* name, const char* hook, const char* priority, const std::vector<const FwRule*>& rules) {
        if (rules.empty()) return;
        content.push_back(fmt::format("chain {} {{", name));
        content.push_back(fmt::format("  type nat hook {} priority {}; policy accept;", hook, priority));
        for (const auto* r : rules) content.push_back("  " + nft_rule(*r));
        content.emplace_back("}");
    };
    chain("prerouting", "prerouting", "dstnat", dnat);
    chain("postrouting", "postrouting", "srcnat", masquerade);
    m.open("content = builtins.concatStringsSep \"\\n\" [");
    for (const auto& l : content) m.line(nix_string(l));
    m.close("];");
    m.close("};");
}

// The managed files besides the hosts file (networking.hosts says that): HTTP route files.
void render_files(Module& m, const Fleetwide& fw, const model::HostState& hs) {
    const std::string hosts = normal_path(fw.cfg.hosts_file);
    for (const auto& [path, f] : hs.files) {
        if (path == hosts) continue;
        if (path_within(path, "/etc") && path != "/etc") {
            m.line(fmt::format("environment.etc.{}.text = {};", nix_string(path.substr(5)), nix_string(f.content)));
        } else {
            m.note(fmt::format("{}: wg-fleet writes this file, which lies outside /etc (environment.etc);", path));
            m.note("write it with the service it configures.");
        }
    }
}

}  // namespace

std::string nix_string(std::string_view s) {
    std::string out = "\"";
    out.reserve(s.size() + 2);
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '$':
                // `${` starts an interpolation; a `$` before anything else is itself.
                out += (i + 1 < s.size() && s[i + 1] == '{') ? "\\$" : "$";
                break;
            default: out += c;
        }
    }
    return out + "\"";
}

std::string render_nixos_module(const Fleetwide& fw, const std::string& node, const std::string& source) {
    Module m;
    m.note(fmt::format("NixOS module of node {}, rendered by `wg-fleet render nixos` from {}.", node, source));
    m.note("Render it again after every change of the fleet file; edits here are lost.");
    m.line("{ config, lib, pkgs, ... }:");
    m.open("{");
    Desired d = render_host(fw, node);
    if (fw.cfg.userspace)
        m.note("userspace: NixOS's WireGuard interfaces need the kernel module; wg-fleet's userspace fallback has no option.");
    for (const auto& [name, w] : d.state.interfaces) {
        std::vector<Route> routes;
        for (const auto& r : d.state.routes)
            if (r.dev == name) routes.push_back(r);
        render_interface(m, fw, node, w, d.labels.of(name), routes, d.state.rules);
    }
    render_firewall(m, d.state);
    render_sysctls(m, d.state);
    render_hosts(m, fw, node);
    render_files(m, fw, d.state);
    m.close("}");
    return m.take();
}

std::string render_nixos_index(const std::vector<std::string>& nodes) {
    Module m;
    m.note("The NixOS module of every node, by host name, rendered by `wg-fleet render nixos --all`.");
    m.note("In a host's configuration: imports = [ (import ./wg-fleet).\"NAME\" ];");
    m.open("{");
    for (const auto& n : nodes) m.line(fmt::format("{} = ./{};", nix_string(n), n + ".nix"));
    m.close("}");
    return m.take();
}

}  // namespace wgf::plan
