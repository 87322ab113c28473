#include "plan/ops.hpp"

#include <fmt/format.h>

#include "model/overloaded.hpp"
#include "plan/foreign_firewall.hpp"

namespace wgf::plan {
namespace {

using model::overloaded;

template <class Prefixes>
std::string join_prefixes(const Prefixes& v) {
    std::string out;
    for (const auto& p : v) out += (out.empty() ? "" : ", ") + p.str();
    return out.empty() ? "(none)" : out;
}

std::string peer_label(const std::string& name, const model::Key& k) {
    return name.empty() ? fmt::format("{}", k.short_str()) : fmt::format("{} ({})", name, k.short_str());
}

std::string describe_route(const model::Route& r) {
    return fmt::format("route {} dev {}{}{}", r.dst, r.dev, r.src ? " src " + r.src->str() : "",
                       r.table == model::kMainTable ? "" : fmt::format(" table {}", r.table));
}

std::string table_name(uint32_t t) { return t == model::kMainTable ? "main" : std::to_string(t); }

}  // namespace

bool is_secret(const model::ManagedFile& f) { return (f.mode & 0077) == 0; }

const char* to_string(Disruption d) {
    switch (d) {
        case Disruption::none: return "nothing";
        case Disruption::peer_session: return "one peer's session";
        case Disruption::all_sessions: return "every session on the device";
    }
    return "?";
}

char mark(const Op& op) {
    return std::visit(overloaded{
                          [](const OpCreateDevice&) { return '+'; },
                          [](const OpAddPeer&) { return '+'; },
                          [](const OpAddAddress&) { return '+'; },
                          [](const OpAddRoute&) { return '+'; },
                          [](const OpAddRule&) { return '+'; },
                          [](const OpAddPolicyRule&) { return '+'; },
                          [](const OpDelPolicyRule&) { return '-'; },
                          [](const OpAddForeignRule&) { return '+'; },
                          [](const OpWriteFile& w) { return w.exists ? '~' : '+'; },
                          [](const OpDeleteDevice&) { return '-'; },
                          [](const OpRemovePeer&) { return '-'; },
                          [](const OpDelAddress&) { return '-'; },
                          [](const OpDelRoute&) { return '-'; },
                          [](const OpDelRule&) { return '-'; },
                          [](const OpDelForeignRule&) { return '-'; },
                          [](const OpRepairFirewall& o) {
                              using W = model::FwDamage::What;
                              return o.damage.what == W::rule || o.damage.what == W::set ? '-' : '~';
                          },
                          [](const OpRemoveFile&) { return '-'; },
                          [](const auto&) { return '~'; },
                      },
                      op);
}

Disruption disruption(const Op& op) {
    return std::visit(overloaded{
                          // A new key invalidates every session: all peers must handshake again.
                          [](const OpSetPrivateKey& o) { return o.fresh ? Disruption::none : Disruption::all_sessions; },
                          // A new port keeps every session (the kernel and wireguard-go keep their
                          // keypairs and only rebind): what it costs is reachability, said in its line.
                          [](const OpDeleteDevice&) { return Disruption::all_sessions; },
                          [](const OpRemovePeer&) { return Disruption::peer_session; },
                          // A new endpoint sends the next handshake elsewhere; allowed IPs and
                          // keepalive change without touching the session.
                          [](const OpUpdatePeer& u) { return u.endpoint ? Disruption::peer_session : Disruption::none; },
                          [](const auto&) { return Disruption::none; },
                      },
                      op);
}

std::string interface_of(const Op& op) {
    return std::visit(overloaded{
                          [](const OpAddRoute& o) { return o.route.dev; },
                          [](const OpDelRoute& o) { return o.route.dev; },
                          [](const OpSetSysctl&) { return std::string(); },
                          [](const OpAddRule&) { return std::string(); },
                          [](const OpAddPolicyRule&) { return std::string(); },
                          [](const OpDelPolicyRule&) { return std::string(); },
                          [](const OpDelRule&) { return std::string(); },
                          [](const OpRepairFirewall&) { return std::string(); },
                          [](const OpWriteFile&) { return std::string(); },
                          [](const OpRemoveFile&) { return std::string(); },
                          [](const OpReload&) { return std::string(); },
                          [](const OpAddForeignRule&) { return std::string(); },
                          [](const OpDelForeignRule&) { return std::string(); },
                          [](const auto& o) { return o.ifname; },
                      },
                      op);
}

const char* kind(const Op& op) {
    return std::visit(overloaded{
                          [](const OpCreateDevice&) { return "create_device"; },
                          [](const OpDeleteDevice&) { return "delete_device"; },
                          [](const OpSetPrivateKey&) { return "set_private_key"; },
                          [](const OpSetListenPort&) { return "set_listen_port"; },
                          [](const OpSetMtu&) { return "set_mtu"; },
                          [](const OpSetUp&) { return "set_up"; },
                          [](const OpAddPeer&) { return "add_peer"; },
                          [](const OpRemovePeer&) { return "remove_peer"; },
                          [](const OpUpdatePeer&) { return "update_peer"; },
                          [](const OpAddAddress&) { return "add_address"; },
                          [](const OpDelAddress&) { return "del_address"; },
                          [](const OpAddRoute&) { return "add_route"; },
                          [](const OpDelRoute&) { return "del_route"; },
                          [](const OpSetSysctl&) { return "set_sysctl"; },
                          [](const OpAddRule&) { return "add_rule"; },
                          [](const OpDelRule&) { return "del_rule"; },
                          [](const OpRepairFirewall&) { return "repair_firewall"; },
                          [](const OpWriteFile&) { return "write_file"; },
                          [](const OpRemoveFile&) { return "remove_file"; },
                          [](const OpSetFwmark&) { return "set_fwmark"; },
                          [](const OpAddPolicyRule&) { return "add_policy_rule"; },
                          [](const OpDelPolicyRule&) { return "del_policy_rule"; },
                          [](const OpReload&) { return "reload"; },
                          [](const OpAddForeignRule&) { return "add_foreign_rule"; },
                          [](const OpDelForeignRule&) { return "del_foreign_rule"; },
                      },
                      op);
}

std::string describe_rule(const model::FwRule& r) {
    switch (r.kind) {
        case model::FwKind::accept_udp: return fmt::format("accept udp dport {}", r.port);
        case model::FwKind::forward:
            return r.oif.empty() ? fmt::format("forward iif {} accept", r.iif) : fmt::format("forward iif {} oif {} accept", r.iif, r.oif);
        case model::FwKind::dnat: {
            // The address alone, bracketed when IPv6: concatenating it inline trips GCC 12's -Wrestrict.
            std::string to = r.to ? r.to->str() : "?";
            if (r.to && r.to->is_v6()) to = fmt::format("[{}]", to);
            return fmt::format("dnat {} dport {} to {}:{}", to_string(r.proto), r.port, to, r.to_port);
        }
        case model::FwKind::masquerade: return fmt::format("masquerade DNATed connections out of {}", r.oif);
        case model::FwKind::exit_forward: return fmt::format("forward iif {} saddr {} accept", r.iif, r.from ? r.from->str() : "?");
        case model::FwKind::exit_masquerade: {
            std::string ifs;
            for (const auto& i : r.not_oif) ifs += (ifs.empty() ? "" : ", ") + i;
            return fmt::format("masquerade saddr {} out of any interface but {}", r.from ? r.from->str() : "?", ifs);
        }
    }
    return "?";
}

std::string describe_policy_rule(const model::PolicyRule& r) {
    std::string s = fmt::format("ipv{} rule {}:", r.family, r.priority);
    if (r.fwmark) s += fmt::format("{} fwmark {:#x}", r.invert ? " not" : "", r.fwmark);
    s += " lookup " + table_name(r.table);
    if (r.suppress_prefixlength) s += fmt::format(" suppress_prefixlength {}", *r.suppress_prefixlength);
    return s;
}

namespace {
// Forwards are elements of a DNAT map, one change each; everything else is a rule.
const char* firewall_item(model::FwKind kind) { return kind == model::FwKind::dnat ? "firewall map element" : "firewall rule"; }
}  // namespace

std::string describe_damage(const model::FwDamage& d) {
    using W = model::FwDamage::What;
    switch (d.what) {
        case W::rule:
            return d.decoded ? fmt::format("firewall rule handle {} (not as wg-fleet builds it): {}", d.handle, describe_rule(*d.decoded))
                             : fmt::format("firewall rule handle {} (not as wg-fleet builds it)", d.handle);
        case W::chain: return fmt::format("firewall chain {} (not as wg-fleet builds it)", d.name);
        case W::set: return fmt::format("firewall set {} (not wg-fleet's)", d.name);
        case W::established: return "firewall rule ct state established,related accept (missing or changed)";
        case W::table_flags: return "firewall table flags (the table was made dormant)";
        case W::map: return fmt::format("firewall map {} or its dnat rule (missing or not as wg-fleet builds it)", d.name);
        case W::element:
            return d.decoded ? fmt::format("firewall map {} element (not as wg-fleet builds it): {}", d.name, describe_rule(*d.decoded))
                             : fmt::format("firewall map {} element (not as wg-fleet builds it)", d.name);
    }
    return "?";
}

std::string describe(const Op& op) {
    std::string body = std::visit(
        overloaded{
            [](const OpCreateDevice& o) {
                // A rollback makes a device again that the file no longer names: no fleet.
                return o.fleet.empty() ? "device " + o.ifname : fmt::format("device {} (fleet {})", o.ifname, o.fleet);
            },
            [](const OpDeleteDevice& o) { return fmt::format("device {}", o.ifname); },
            [](const OpSetPrivateKey& o) {
                if (o.generate) return fmt::format("device {}: new private key, generated into {}", o.ifname, o.key_file);
                return fmt::format("device {}: private key from {} (public key {})", o.ifname, o.key_file, o.public_key.short_str());
            },
            [](const OpSetListenPort& o) {
                if (!o.old || o.fresh) return fmt::format("device {}: listen port {}", o.ifname, o.port);
                return fmt::format(
                    "device {}: listen port {} -> {} (sessions survive; peers that dial this node reach it "
                    "only once their endpoint follows the new port)",
                    o.ifname, *o.old, o.port);
            },
            [](const OpSetMtu& o) {
                // A device this plan creates has no MTU before (old 0): only the one it gets.
                return o.old ? fmt::format("link {}: mtu {} -> {}", o.ifname, o.old, o.mtu)
                             : fmt::format("link {}: mtu {}", o.ifname, o.mtu);
            },
            [](const OpSetUp& o) { return fmt::format("link {}: up", o.ifname); },
            [](const OpSetFwmark& o) {
                auto m = [](uint32_t v) { return v ? fmt::format("{:#x}", v) : std::string("(none)"); };
                return fmt::format("device {}: fwmark {} -> {}", o.ifname, m(o.old), m(o.fwmark));
            },
            [](const OpAddPeer& o) {
                std::string s = fmt::format(
                    "peer {} on {}: {}allowed-ips {}", peer_label(o.name, o.peer.public_key), o.ifname,
                    o.swapped_from ? fmt::format("key swap (new key, replaces {}); ", o.swapped_from->short_str()) : "",
                    join_prefixes(o.peer.allowed_ips));
                if (o.peer.endpoint) s += "; endpoint " + o.peer.endpoint->str();
                if (o.peer.keepalive) s += fmt::format("; keepalive {}", o.peer.keepalive);
                return s;
            },
            [](const OpRemovePeer& o) {
                if (o.swapped_for)
                    return fmt::format("peer {} on {}: key swap (old key, replaced by {})", peer_label(o.name, o.public_key), o.ifname,
                                       o.swapped_for->short_str());
                return fmt::format("peer {} on {}{}", peer_label(o.name, o.public_key), o.ifname,
                                   o.foreign ? " (not in the fleet; exclusive: true)" : "");
            },
            [](const OpUpdatePeer& o) {
                std::vector<std::string> parts;
                if (o.endpoint)
                    parts.push_back(fmt::format("endpoint {} -> {}", o.old_endpoint ? o.old_endpoint->str() : "(none)", o.endpoint->str()));
                if (o.keepalive) parts.push_back(fmt::format("keepalive {} -> {}", o.old_keepalive.value_or(0), *o.keepalive));
                if (o.allowed_ips) {
                    std::string s = "allowed-ips";
                    if (!o.added.empty()) s += " +" + join_prefixes(o.added);
                    if (!o.removed.empty()) s += " -" + join_prefixes(o.removed);
                    parts.push_back(s);
                }
                std::string s = fmt::format("peer {} on {}:", peer_label(o.name, o.public_key), o.ifname);
                for (size_t i = 0; i < parts.size(); ++i) s += (i ? "; " : " ") + parts[i];
                return s;
            },
            [](const OpAddAddress& o) { return fmt::format("address {} dev {}", o.addr, o.ifname); },
            [](const OpDelAddress& o) { return fmt::format("address {} dev {}", o.addr, o.ifname); },
            [](const OpAddRoute& o) { return describe_route(o.route); },
            [](const OpDelRoute& o) { return describe_route(o.route); },
            [](const OpAddPolicyRule& o) { return describe_policy_rule(o.rule); },
            [](const OpDelPolicyRule& o) { return describe_policy_rule(o.rule); },
            [](const OpSetSysctl& o) {
                return fmt::format("sysctl {} {} -> {}{}", o.key, o.old.empty() ? "(unset)" : o.old, o.value,
                                   o.restore ? " (restored: wg-fleet no longer needs it)" : "");
            },
            [](const OpAddRule& o) { return fmt::format("{} {}: {}", firewall_item(o.rule.kind), o.rule.id, describe_rule(o.rule)); },
            [](const OpDelRule& o) {
                return o.old ? fmt::format("{} {}: {}", firewall_item(o.old->kind), o.id, describe_rule(*o.old))
                             : fmt::format("firewall rule {}", o.id);
            },
            [](const OpRepairFirewall& o) { return describe_damage(o.damage); },
            [](const OpWriteFile& o) {
                return o.exists ? fmt::format("file {} ({} line{} changed)", o.file.path, o.changed_lines, o.changed_lines == 1 ? "" : "s")
                                : fmt::format("file {} (mode {:04o})", o.file.path, o.file.mode);
            },
            [](const OpRemoveFile& o) { return fmt::format("file {}", o.path); },
            [](const OpReload& o) { return fmt::format("reload: {} (the files in {} changed)", o.command, o.dir); },
            [](const OpAddForeignRule& o) {
                return fmt::format("rule in table {} {}, chain {} (another table's; firewall: foreign_accept): insert {} comment \"{}{}\"",
                                   o.rule.family, o.rule.table, o.rule.chain, describe_foreign_match(o.rule.id), model::kForeignRuleMark,
                                   o.rule.id);
            },
            [](const OpDelForeignRule& o) {
                return fmt::format("rule in table {} {}, chain {}: {} comment \"{}{}\"{}", o.rule.family, o.rule.table, o.rule.chain,
                                   describe_foreign_match(o.rule.id), model::kForeignRuleMark, o.rule.id,
                                   o.rule.as_built ? "" : " (not as wg-fleet builds it)");
            },
        },
        op);
    std::string line = fmt::format("{} {}", mark(op), body);
    if (auto d = disruption(op); d != Disruption::none) line += fmt::format("  [disrupts {}]", to_string(d));
    return line;
}

}  // namespace wgf::plan
