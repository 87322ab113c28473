#include "apply/execute.hpp"

#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "model/overloaded.hpp"

namespace wgf::apply {
namespace {

using backend::Error;
using backend::Status;
using namespace wgf::plan;

using model::overloaded;

// Applies ops in order, grouping consecutive WireGuard ops on one device into one set (one
// netlink transaction or UAPI exchange) and consecutive rule ops into one atomic nft batch.
class Applier {
public:
    Applier(Backends& b, KeyStore& keys, Journal* j) : b_(b), keys_(keys), journal_(j) {}

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
            out[k - from] = std::visit(overloaded{
                                           [&](const OpSetPrivateKey& o) { return d.public_key == o.public_key; },
                                           [&](const OpSetListenPort& o) { return d.listen_port == o.port; },
                                           [&](const OpAddPeer& o) {
                                               const auto* p = peer(o.peer.public_key);
                                               return p && (!o.peer.endpoint || p->endpoint == o.peer.endpoint) &&
                                                      p->keepalive == o.peer.keepalive && p->allowed_ips == o.peer.allowed_ips;
                                           },
                                           [&](const OpRemovePeer& o) { return peer(o.public_key) == nullptr; },
                                           [&](const OpUpdatePeer& o) {
                                               const auto* p = peer(o.public_key);
                                               return p && (!o.endpoint || p->endpoint == o.endpoint) &&
                                                      (!o.keepalive || p->keepalive == *o.keepalive) &&
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

    // A repair has no part in the change: the firewall repairs all the damage it finds.
    static bool is_rule(const Op& op) {
        return std::holds_alternative<OpAddRule>(op) || std::holds_alternative<OpDelRule>(op) ||
               std::holds_alternative<OpRepairFirewall>(op);
    }

    Status apply_wg(const std::string& ifname, const std::vector<Op>& ops, size_t from, size_t to) {
        backend::WgDeviceChange c;
        c.ifname = ifname;
        // A device created in this apply has no peers to keep: its first set sets them all at
        // once. A later set (a port taken after a deleted device freed it) keeps them.
        c.replace_peers = created_.erase(ifname) > 0;
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
            } else if (auto* lp = std::get_if<OpSetListenPort>(&op)) {
                c.listen_port = lp->port;
            } else if (auto* add = std::get_if<OpAddPeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = add->peer.public_key;
                p.endpoint = add->peer.endpoint;
                p.keepalive = add->peer.keepalive;
                p.replace_allowed_ips = true;
                p.allowed_ips = add->peer.allowed_ips.prefixes();
                c.peers.push_back(std::move(p));
            } else if (auto* rm = std::get_if<OpRemovePeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = rm->public_key;
                p.remove = true;
                c.peers.push_back(std::move(p));
            } else if (auto* upd = std::get_if<OpUpdatePeer>(&op)) {
                backend::WgPeerChange p;
                p.public_key = upd->public_key;
                p.update_only = true;
                p.endpoint = upd->endpoint;
                p.keepalive = upd->keepalive;
                if (upd->allowed_ips) {
                    p.replace_allowed_ips = true;
                    p.allowed_ips = upd->allowed_ips->prefixes();
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

    Status apply_one(const Op& op) {
        return std::visit(overloaded{
                              [&](const OpCreateDevice& o) {
                                  created_.insert(o.ifname);
                                  return b_.wg.create_device(o.ifname);
                              },
                              [&](const OpDeleteDevice& o) { return b_.wg.delete_device(o.ifname); },
                              [&](const OpSetMtu& o) { return b_.links.set_mtu(o.ifname, o.mtu); },
                              [&](const OpSetUp& o) { return b_.links.set_up(o.ifname, true); },
                              [&](const OpAddAddress& o) { return b_.links.add_address(o.ifname, o.addr); },
                              [&](const OpDelAddress& o) { return b_.links.del_address(o.ifname, o.addr); },
                              [&](const OpAddRoute& o) { return b_.links.add_route(o.route); },
                              [&](const OpDelRoute& o) { return b_.links.del_route(o.route); },
                              [&](const OpAddPolicyRule& o) { return b_.links.add_rule(o.rule); },
                              [&](const OpDelPolicyRule& o) { return b_.links.del_rule(o.rule); },
                              [&](const OpSetFwmark& o) {
                                  backend::WgDeviceChange c;
                                  c.ifname = o.ifname;
                                  c.fwmark = o.fwmark;
                                  return b_.wg.set_device(c);
                              },
                              [&](const OpSetSysctl& o) { return b_.sysctls.write(o.key, o.value); },
                              [&](const OpWriteFile& o) { return b_.files.write(o.file); },
                              [&](const OpRemoveFile& o) { return b_.files.remove(o.path); },
                              [&](const OpAddForeignRule& o) { return b_.firewall.add_foreign(o.rule); },
                              [&](const OpDelForeignRule& o) { return b_.firewall.remove_foreign(o.rule); },
                              [&](const OpReload& o) -> Status {
                                  if (!b_.commands) return Error{EINVAL, fmt::format("reload `{}`: no command runner", o.command)};
                                  return b_.commands->run(o.command);
                              },
                              [&](const auto& o) -> Status {
                                  return Error{EINVAL, fmt::format("internal: unexpected operation {}", kind(Op{o}))};
                              },
                          },
                          op);
    }

    Backends& b_;
    KeyStore& keys_;
    Journal* journal_;
    ApplyResult result_;
    std::set<std::string> created_;  // devices created in this apply and not set yet
};

}  // namespace

ApplyResult apply_plan(Backends& b, const Plan& plan, KeyStore& keys, Journal* journal) { return Applier(b, keys, journal).run(plan); }

}  // namespace wgf::apply
