#include "apply/try.hpp"

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "apply/engine.hpp"
#include "plan/health.hpp"
#include "plan/render.hpp"

namespace wgf::apply {

TryRecord make_try(const model::HostState& desired, const model::Labels& labels, const Live& live, const plan::Ownership& owned,
                   int64_t now, int64_t seconds) {
    TryRecord t;
    t.id = fmt::format("{}", now);
    t.started = now;
    t.deadline = now + seconds;
    t.owned_before = owned;
    model::HostState& s = t.snapshot;
    s.interfaces = live.state.interfaces;
    s.routes = live.state.routes;
    s.rules = live.state.rules;
    s.firewall = live.state.firewall;
    s.foreign_rules = live.state.foreign_rules;
    s.files = live.state.files;
    // Only the sysctls wg-fleet manages: the read also covers every interface's accept_ra.
    for (const auto& [k, v] : live.state.sysctls)
        if (desired.sysctls.count(k) || owned.sysctls.count(k)) s.sysctls.emplace(k, v);
    for (const auto& [name, w] : s.interfaces) {
        model::InterfaceLabels l;
        if (auto d = labels.interfaces.find(name); d != labels.interfaces.end()) {
            l.fleet = d->second.fleet;
            l.private_key_file = d->second.private_key_file;
            l.peer_names = d->second.peer_names;
        }
        // Names of peers the try removes from the fleet: as the record knew them.
        if (auto n = owned.names.find(name); n != owned.names.end())
            for (const auto& [k, nm] : n->second) l.peer_names.emplace(k, nm);
        t.labels.interfaces.emplace(name, std::move(l));
    }
    t.labels.reload = labels.reload;
    for (const auto& [ifname, want] : desired.interfaces) {
        auto st = live.stats.find(ifname);
        if (st == live.stats.end()) continue;
        for (const auto& [key, p] : want.peers) {
            auto ps = st->second.find(key);
            if (ps == st->second.end()) continue;
            if (plan::health({.last_handshake = ps->second.last_handshake, .keepalive = p.keepalive}, now) != plan::Health::ok) continue;
            t.baseline.push_back({.ifname = ifname,
                                  .public_key = key,
                                  .name = labels.peer_name(ifname, key),
                                  .last_handshake = ps->second.last_handshake,
                                  .rx_bytes = ps->second.rx_bytes});
        }
    }
    return t;
}

std::string kept_key_path(const std::string& state_dir, const std::string& ifname) { return state_dir + "/try-keys/" + ifname + ".key"; }

std::set<std::string> keys_to_keep(const plan::Plan& plan) {
    std::set<std::string> out;
    for (const auto& op : plan.ops) {
        if (const auto* k = std::get_if<plan::OpSetPrivateKey>(&op); k && !k->fresh) out.insert(k->ifname);
        if (const auto* d = std::get_if<plan::OpDeleteDevice>(&op)) out.insert(d->ifname);
    }
    return out;
}

backend::Result<TryRecord> start_try(Backends& b, KeyStore& keys, const model::HostState& desired, const model::Labels& labels,
                                     const Live& live, const plan::Plan& plan, const plan::Ownership& owned, const TryStart& how) {
    TryRecord t = make_try(desired, labels, live, owned, how.now, how.seconds);
    // The sessions the plan ends: every one on a device, or one peer's.
    std::set<std::string> ended_devices;
    std::set<std::pair<std::string, model::Key>> ended_peers;
    for (const auto& op : plan.ops) {
        const auto d = plan::disruption(op);
        if (d == plan::Disruption::all_sessions) ended_devices.insert(plan::interface_of(op));
        if (const auto* u = std::get_if<plan::OpUpdatePeer>(&op); u && d == plan::Disruption::peer_session)
            ended_peers.emplace(u->ifname, u->public_key);
    }
    for (auto& p : t.baseline) p.needs_handshake = ended_devices.count(p.ifname) || ended_peers.count({p.ifname, p.public_key});
    for (const auto& ifname : keys_to_keep(plan)) {
        auto cannot = [&](const std::string& why) {
            return backend::Error{EIO, fmt::format("the try changes the private key of {} or deletes it, and its key {}: a rollback "
                                                   "could not restore it",
                                                   ifname, why)};
        };
        auto dev = b.wg.read_device(ifname);
        if (!dev) return cannot("cannot be read (" + dev.error().message + ")");
        auto in_snapshot = t.snapshot.interfaces.find(ifname);
        // A device without a key has none to give back (and no session to lose).
        if (!dev->private_key && in_snapshot != t.snapshot.interfaces.end() && !in_snapshot->second.public_key) continue;
        if (!dev->private_key) return cannot("is not readable from the device");
        // The key the snapshot holds, or the device changed between the read and now.
        if (in_snapshot == t.snapshot.interfaces.end() || in_snapshot->second.public_key != dev->private_key->public_key())
            return cannot("changed while the try was being planned");
        const std::string path = kept_key_path(how.state_dir, ifname);
        auto written = keys.install(path, *dev->private_key);
        if (!written) return cannot("cannot be kept (" + written.error().message + ")");
        if (!*written) {
            // Left by an earlier try (its hold still kept it): usable when it is this key.
            auto there = keys.load(path);
            if (!there || !there->has_value() || !(**there == *dev->private_key))
                return cannot("cannot be kept: " + path + " exists and holds another key");
        }
        t.labels.interfaces[ifname].private_key_file = path;
    }
    if (how.keys_dir)
        for (const auto& [name, w] : t.snapshot.interfaces) {
            const auto& fleet = t.labels.of(name).fleet;
            if (w.public_key && !fleet.empty())
                t.published.emplace(plan::published_key_path(*how.keys_dir, fleet, how.node), *w.public_key);
        }
    return t;
}

bool back_again(const PeerBaseline& before, const backend::WgPeerStats& now, int64_t changed, uint64_t rx_after) {
    if (now.last_handshake > before.last_handshake && now.last_handshake >= changed) return true;
    return !before.needs_handshake && now.rx_bytes > rx_after;
}

std::vector<std::string> not_back(const std::vector<PeerBaseline>& baseline,
                                  const std::map<std::string, std::map<model::Key, backend::WgPeerStats>>& now,
                                  const std::map<std::string, std::map<model::Key, backend::WgPeerStats>>& after, int64_t changed) {
    std::vector<std::string> out;
    auto find = [](const auto& m, const PeerBaseline& b) -> const backend::WgPeerStats* {
        auto i = m.find(b.ifname);
        if (i == m.end()) return nullptr;
        auto p = i->second.find(b.public_key);
        return p == i->second.end() ? nullptr : &p->second;
    };
    for (const auto& b : baseline) {
        const auto* n = find(now, b);
        const auto* a = find(after, b);
        // Without a reading right after the change, growth counts from before it.
        if (!n || !back_again(b, *n, changed, a ? a->rx_bytes : b.rx_bytes))
            out.push_back(fmt::format("{} on {}", b.name.empty() ? b.public_key.short_str() : b.name, b.ifname));
    }
    return out;
}

Hold hold_verdict(const std::optional<std::string>& held_digest, const std::string& digest, bool trying, bool forced) {
    if (!held_digest || *held_digest != digest) return Hold::none;
    return trying || forced ? Hold::retried : Hold::held;
}

namespace {

// The devices of a recent read, each handed out once in place of reading it; any other read, and
// every change, goes to the real backend.
class RecentReads final : public backend::WireGuard {
public:
    RecentReads(backend::WireGuard& real, RecentDevices& recent) : real_(real), recent_(recent) {}
    std::vector<std::string> list_devices() override { return real_.list_devices(); }
    backend::Result<backend::WgDeviceLive> read_device(const std::string& ifname) override {
        auto it = recent_.devices.find(ifname);
        if (it == recent_.devices.end()) return real_.read_device(ifname);
        backend::WgDeviceLive d = std::move(it->second);
        recent_.devices.erase(it);
        ++used_;
        return d;
    }
    backend::Status set_device(const backend::WgDeviceChange& change) override { return real_.set_device(change); }
    backend::Status create_device(const std::string& ifname) override { return real_.create_device(ifname); }
    backend::Status delete_device(const std::string& ifname) override { return real_.delete_device(ifname); }
    int used() const { return used_; }

private:
    backend::WireGuard& real_;
    RecentDevices& recent_;
    int used_ = 0;
};

}  // namespace

RollbackResult roll_back(Backends& backends, KeyStore& keys, StateStore& state, Journal* journal, const TryRecord& t, int64_t now,
                         bool plan_only, RecentDevices* recent) {
    RollbackResult r;
    auto owned = state.load();
    if (!owned) {
        r.error = owned.error();
        return r;
    }
    r.timings.lap("ownership");
    std::optional<RecentReads> reads;
    if (recent && std::chrono::steady_clock::now() - recent->at <= kRecentDevicesFor) reads.emplace(backends.wg, *recent);
    // The backends the plan reads through: `backends` with the recent devices in front of its WireGuard.
    Backends planning{.wg = reads ? static_cast<backend::WireGuard&>(*reads) : backends.wg,
                      .links = backends.links,
                      .sysctls = backends.sysctls,
                      .firewall = backends.firewall,
                      .files = backends.files,
                      .commands = backends.commands};
    auto live = read_live(planning, t.snapshot, *owned, now, nullptr, &r.timings);
    if (recent) recent->devices.clear();  // used once
    const bool planned_from_recent = reads && reads->used() > 0;
    r.timings.lap(planned_from_recent ? fmt::format("read (the rest; {} device(s) from the last poll)", reads->used())
                                      : std::string("read (the rest)"));
    if (!live) {
        r.error = live.error();
        return r;
    }
    r.plan = plan::diff(t.snapshot, t.labels, live->state, *owned, live->facts);
    r.timings.lap("diff");
    if (plan_only) return r;
    // What the rollback creates again (peers, files the try removed) is ours before it exists.
    plan::Ownership ahead = write_ahead(*owned, t.owned_before);
    if (ahead != *owned)
        if (auto s = state.save(ahead); !s) {
            r.error = backend::Error{s.error().code, s.error().message + "; nothing rolled back"};
            return r;
        }
    r.timings.lap("state");
    r.applied = r.plan.empty() ? ApplyResult{} : apply_plan(backends, r.plan, keys, journal);
    r.timings.lap("apply");
    const plan::Ownership& record = r.applied->ok() ? t.owned_before : ahead;
    if (record != ahead)
        if (auto s = state.save(record); !s) r.error = s.error();
    r.timings.lap("state");
    // The public keys the fleet dials this node by, as before (a try that changed a key
    // published the new one).
    if (r.applied->ok())
        for (const auto& [path, key] : t.published)
            if (auto s = keys.publish(path, key); !s && !r.error) r.error = s.error();
    auto after = read_live(backends, t.snapshot, record, now, nullptr, &r.timings);
    r.timings.lap("read again (the rest)");
    if (!after) {
        if (!r.error) r.error = after.error();
        return r;
    }
    r.leftover = plan::diff(t.snapshot, t.labels, after->state, record, after->facts);
    r.timings.lap("verify");
    // Planned from a read that was no longer the devices' state: done again from a fresh read
    // (what was applied is in r.applied's journal lines; the second plan starts from its result).
    if (planned_from_recent && !r.ok()) {
        RollbackResult again = roll_back(backends, keys, state, journal, t, now, plan_only);
        model::Timings timings = std::move(r.timings);
        timings.lap("not verified: again from a fresh read");
        timings.append(again.timings);
        again.timings = std::move(timings);
        return again;
    }
    return r;
}

}  // namespace wgf::apply
