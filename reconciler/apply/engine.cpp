#include "apply/engine.hpp"

#include <algorithm>
#include <cerrno>
#include <map>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "plan/foreign_firewall.hpp"
#include "plan/sysctls.hpp"

namespace wgf::apply {

Prefetch::Prefetch(Backends& backends, std::set<std::string> interfaces, int64_t now, KeptFuture kept)
    : interfaces_(std::move(interfaces)) {
    result_ = std::async(std::launch::async, [&backends, names = interfaces_, now, kept = std::move(kept)]() -> Read {
        model::Timings t;
        Live live;
        live.facts.now = now;
        if (auto s = read_interfaces(backends, names, names, live, &t); !s) return Read{s.error(), std::move(t)};
        std::optional<backend::KeptFirewall> record;
        if (kept.valid()) {
            try {
                record = kept.get();
            } catch (const std::future_error&) {  // the caller gave the run up: read it all
            }
            t.lap("wait for the firewall record");
        }
        if (auto s = read_tables(backends, names, live, &t, record ? &*record : nullptr); !s) return Read{s.error(), std::move(t)};
        return Read{std::move(live), std::move(t)};
    });
}

Prefetch::~Prefetch() {
    if (result_.valid()) result_.wait();
}

Prefetch::Read Prefetch::take() { return result_.get(); }

std::set<std::string> interfaces_of(const model::Config& cfg, const std::string& node) {
    std::set<std::string> names;
    for (const auto& [name, f] : cfg.fleets)
        if (f.controllers.count(node) || f.peers.count(node) || (f.style == model::FleetStyle::subnet && f.server == node))
            names.insert(f.interface);
    return names;
}

plan::Ownership write_ahead(const plan::Ownership& before, const plan::Ownership& after) {
    plan::Ownership o = before;
    o.interfaces.insert(after.interfaces.begin(), after.interfaces.end());
    for (const auto& [i, ks] : after.peers) o.peers[i].insert(ks.begin(), ks.end());
    for (const auto& [i, ns] : after.names) o.names[i].insert(ns.begin(), ns.end());
    o.files.insert(after.files.begin(), after.files.end());
    // A sysctl about to change is recorded with the value it had first; one about to be restored
    // stays recorded until it is.
    for (const auto& [k, rec] : after.sysctls) o.sysctls.insert_or_assign(k, rec);
    // A directory's reload command as configured now; one no longer configured stays recorded
    // until its files are gone.
    for (const auto& [dir, command] : after.reload_commands) o.reload_commands.insert_or_assign(dir, command);
    // Endpoints are what was set, not what will be: they stay as they were until the run ends.
    for (const auto& [i, eps] : after.endpoints) o.endpoints[i];
    return o;
}

bool covers(const plan::Ownership& before, const plan::Ownership& after) {
    auto within = [](const auto& small, const auto& big) { return std::includes(big.begin(), big.end(), small.begin(), small.end()); };
    if (!within(after.interfaces, before.interfaces) || !within(after.files, before.files)) return false;
    for (const auto& [i, ks] : after.peers) {
        auto b = before.peers.find(i);
        if (b == before.peers.end() || !within(ks, b->second)) return false;
    }
    for (const auto& [i, eps] : after.endpoints)
        if (!before.endpoints.count(i)) return false;
    for (const auto& [k, rec] : after.sysctls) {
        auto b = before.sysctls.find(k);
        if (b == before.sysctls.end() || b->second != rec) return false;
    }
    for (const auto& [dir, command] : after.reload_commands) {
        auto b = before.reload_commands.find(dir);
        if (b == before.reload_commands.end() || b->second != command) return false;
    }
    return true;
}

std::map<std::string, std::map<model::Key, model::Endpoint>> endpoints_set(const plan::Ownership& before, const model::HostState& desired,
                                                                           const model::HostState& live) {
    auto eps = before.endpoints;
    for (const auto& [ifname, w] : desired.interfaces) {
        auto& out = eps[ifname];
        auto l = live.interfaces.find(ifname);
        if (l == live.interfaces.end()) continue;
        for (const auto& [k, p] : w.peers) {
            if (!p.endpoint) continue;
            auto lp = l->second.peers.find(k);
            if (lp != l->second.peers.end() && lp->second.endpoint == p.endpoint) out.insert_or_assign(k, *p.endpoint);
        }
    }
    return eps;
}

backend::Status check_foreign_devices(const model::HostState& desired, const model::HostState& live, const plan::Ownership& owned,
                                      const std::set<std::string>& adopt) {
    for (const auto& [ifname, w] : desired.interfaces) {
        if (!live.interfaces.count(ifname) || owned.interfaces.count(ifname) || adopt.count(ifname)) continue;
        return backend::Error{EEXIST, fmt::format("interface {} is a WireGuard device that wg-fleet did not create (state.json does not "
                                                  "record it as ours); it is left as it is. To take it over, e.g. from wg-quick, run "
                                                  "`wg-fleet apply --adopt {}` (`wg-fleet plan --adopt {}` shows what changes: its private "
                                                  "key and port are set as the fleet says; its other peers are reported as foreign)",
                                                  ifname, ifname, ifname)};
    }
    return {};
}

backend::Status check_file_places(backend::Files& files, const model::HostState& desired, const model::Labels& labels,
                                  const std::string& state_dir, plan::Ownership& owned) {
    std::map<backend::FilePlace, std::string> key_files, places;
    for (const auto& [ifname, l] : labels.interfaces) {
        auto p = files.place(l.private_key_file);
        if (!p) return p.error();
        key_files.emplace(*p, l.private_key_file);
    }
    for (const auto& [path, f] : desired.files) {
        auto p = files.place(path);
        if (!p) return p.error();
        if (auto k = key_files.find(*p); k != key_files.end())
            return backend::Error{EINVAL, fmt::format("managed file {} is the private key file {}; nothing applied (give it a path "
                                                      "outside state_dir)",
                                                      path, k->second)};
        if (auto [it, fresh] = places.emplace(*p, path); !fresh)
            return backend::Error{EINVAL, fmt::format("managed files {} and {} are one file; nothing applied (give each a path of its "
                                                      "own)",
                                                      it->second, path)};
        auto in = files.within(path, state_dir);
        if (!in) return in.error();
        if (*in)
            return backend::Error{EINVAL, fmt::format("managed file {} lies inside state_dir {}, where wg-fleet keeps its private keys "
                                                      "and state; nothing applied (choose a path outside it)",
                                                      path, state_dir)};
    }
    // An owned file that is a desired one under another name (an old spelling of the path, or
    // /var/run for /run) is that file: removing the old name would delete it.
    for (auto it = owned.files.begin(); it != owned.files.end();) {
        if (desired.files.count(*it)) {
            ++it;
            continue;
        }
        auto p = files.place(*it);
        if (p && places.count(*p)) it = owned.files.erase(it);
        else ++it;
    }
    return backend::Status::ok();
}

void restore_endpoints(plan::Plan& plan, const model::HostState& last_verified) {
    for (auto& op : plan.ops) {
        auto* add = std::get_if<plan::OpAddPeer>(&op);
        if (!add || add->peer.endpoint) continue;
        auto w = last_verified.interfaces.find(add->ifname);
        if (w == last_verified.interfaces.end()) continue;
        auto p = w->second.peers.find(add->peer.public_key);
        if (p != w->second.peers.end() && p->second.endpoint) add->peer.endpoint = p->second.endpoint;
    }
}

namespace {

// What a LiveCache keeps of a verified read: the desired devices and their stats, nothing a
// run reads cheaply anyway; and our table's rules when a firewall record stands for them (the
// digest given), which spares an edit the table's dump.
LiveCache cache_of(Live live, const std::set<std::string>& interfaces, plan::Ownership owned, std::optional<std::string> firewall_digest) {
    Live kept;
    kept.facts.now = live.facts.now;
    for (const auto& name : interfaces) {
        auto w = live.state.interfaces.find(name);
        if (w == live.state.interfaces.end()) continue;
        kept.state.interfaces.insert(live.state.interfaces.extract(w));
        if (auto s = live.stats.find(name); s != live.stats.end()) kept.stats.insert(live.stats.extract(s));
        if (auto h = live.facts.last_handshake.find(name); h != live.facts.last_handshake.end())
            kept.facts.last_handshake.insert(live.facts.last_handshake.extract(h));
    }
    LiveCache c{.live = std::move(kept), .interfaces = interfaces, .owned = std::move(owned), .firewall = {}, .firewall_digest = {}};
    if (firewall_digest) {
        c.firewall = std::move(live.state.firewall);
        c.firewall_digest = std::move(*firewall_digest);
    }
    return c;
}

}  // namespace

Desired render_desired(const plan::Fleetwide& fleet, const std::string& node) {
    auto rendered = plan::render_host(fleet, node);
    Desired d{.state = std::move(rendered.state),
              .labels = std::move(rendered.labels),
              .state_dir = fleet.cfg.state_dir,
              .keys_dir = fleet.cfg.keys_dir,
              .exclusive = {}};
    for (const auto& [name, f] : fleet.cfg.fleets)
        if (f.exclusive) d.exclusive.insert(f.interface);
    return d;
}

bool covers(const plan::Ownership& before, const model::HostState& desired, const std::map<std::string, plan::OwnedSysctl>& sysctls,
            const std::optional<model::FileReload>& reload) {
    for (const auto& [name, w] : desired.interfaces) {
        auto b = before.peers.find(name);
        if (!before.interfaces.count(name) || !before.endpoints.count(name) || b == before.peers.end()) return false;
        // Both ordered by key: one walk.
        auto k = b->second.begin();
        for (const auto& [key, p] : w.peers) {
            while (k != b->second.end() && *k < key) ++k;
            if (k == b->second.end() || *k != key) return false;
            ++k;
        }
    }
    for (const auto& [path, f] : desired.files)
        if (!before.files.count(path)) return false;
    for (const auto& [k, rec] : sysctls) {
        auto b = before.sysctls.find(k);
        if (b == before.sysctls.end() || b->second != rec) return false;
    }
    if (reload) {
        auto b = before.reload_commands.find(reload->dir);
        if (b == before.reload_commands.end() || b->second != reload->command) return false;
    }
    return true;
}

namespace {

// The result of a run on cached devices that turned out out of date, followed by `again`, the
// run started over from a full read: what the first applied stays applied.
RunResult started_over(const RunResult& first, RunResult again) {
    again.warnings.insert(again.warnings.begin(),
                          fmt::format("the devices' state kept from the last run was out of date ({}); read again and "
                                      "converged from there",
                                      first.applied->ok() ? fmt::format("{} difference(s) left after the edit", first.leftover->ops.size())
                                                          : first.applied->error->message));
    if (again.applied) again.applied->done.insert(again.applied->done.begin(), first.applied->done.begin(), first.applied->done.end());
    return again;
}

}  // namespace

RunResult Engine::run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch, LiveRead how) {
    model::Timings t;
    Desired d = render_desired(fleet, node);
    t.lap("render");
    bool stale = false;
    // The rendered state is the run's own: taken over, not copied.
    RunResult r = run_once(std::move(d), node, mode, now, prefetch, how, stale);
    if (stale) r = started_over(r, run_once(render_desired(fleet, node), node, mode, now, nullptr, LiveRead::full, stale));
    t.append(r.timings);
    r.timings = std::move(t);
    return r;
}

RunResult Engine::run(Desired d, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch, LiveRead how) {
    // A run from cached devices may start over from a full read, with the desired state as given.
    std::optional<Desired> for_full_read;
    if (how == LiveRead::cached_devices && cache && cache->live) for_full_read = d;
    bool stale = false;
    RunResult r = run_once(std::move(d), node, mode, now, prefetch, how, stale);
    if (stale) r = started_over(r, run_once(std::move(*for_full_read), node, mode, now, nullptr, LiveRead::full, stale));
    return r;
}

RunResult Engine::run_once(Desired d, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch, LiveRead how, bool& stale) {
    // An applying run gives the cache up whatever happens; only a verified run leaves a new one.
    std::optional<LiveCache> prior;
    if (cache && mode == Mode::apply && cache->live) prior = std::exchange(*cache, LiveCache{});
    RunResult r;
    r.desired = std::move(d.state);
    r.labels = std::move(d.labels);
    auto publish_key = [&](const model::WgInterface& w) {
        auto s = keys.publish(plan::published_key_path(*d.keys_dir, r.labels.of(w.name).fleet, node), *w.public_key);
        if (!s) r.warnings.push_back(s.error().message);
    };

    // Keys: both modes only read. A missing key is a planned operation (generate, then set),
    // so plan shows it with what it disrupts and apply performs exactly that line.
    for (auto& [ifname, w] : r.desired.interfaces) {
        auto& l = r.labels.interfaces[ifname];
        auto key = keys.load(l.private_key_file);
        if (!key) {
            r.error = key.error();
            return r;
        }
        if (!key->has_value()) {
            l.generate_key = true;
            continue;
        }
        w.public_key = (*key)->public_key();
    }
    // Rotations that are due: the node's own key switched, other members' keys in their peer entries.
    if (next_keys && d.keys_dir)
        r.rotation = apply_rotations(
            {.keys = keys, .next = *next_keys, .journal = mode == Mode::apply ? journal : nullptr, .memory = rotations}, r.desired,
            r.labels, *d.keys_dir, node, mode == Mode::apply, now);
    for (const auto& w : r.rotation.warnings) r.warnings.push_back(w);
    r.timings.lap("keys");
    resolve_endpoints(r.desired, r.labels, resolver, r.warnings);
    r.timings.lap("resolve");

    // The ownership record, and the live state: prefetched when the prefetch read the
    // interfaces the node has, else read now.
    auto owned = state.load();
    if (!owned) {
        r.error = owned.error();
        return r;
    }
    r.timings.lap("ownership");
    // Before anything is written: where the managed files land. Only the owned files can
    // change for the diff: the record is copied only when they do.
    plan::Ownership owned_files{.interfaces = {},
                                .peers = {},
                                .endpoints = {},
                                .files = owned->files,
                                .sysctls = {},
                                .names = {},
                                .reloads = {},
                                .reload_commands = {}};
    if (auto s = check_file_places(backends.files, r.desired, r.labels, d.state_dir, owned_files); !s) {
        r.error = s.error();
        return r;
    }
    std::optional<plan::Ownership> owned_other_files;
    if (owned_files.files != owned->files) {
        owned_other_files = *owned;
        owned_other_files->files = std::move(owned_files.files);
    }
    const plan::Ownership& owned_for_diff = owned_other_files ? *owned_other_files : *owned;
    if (mode == Mode::apply && d.keys_dir)
        for (const auto& [ifname, w] : r.desired.interfaces)
            if (w.public_key) publish_key(w);
    const auto desired_names = interface_names(r.desired);
    std::optional<Prefetch::Read> read;
    if (prefetch) {
        read = prefetch->take();
        r.read_timings = read->timings;
    }
    const bool prefetched = read && prefetch->interfaces() == desired_names;
    // The firewall kept from the last verified apply, for the reads made here (a prefetch was
    // given one of its own).
    const std::optional<backend::KeptFirewall> kept = kept_firewall ? kept_firewall->load() : std::nullopt;
    const backend::KeptFirewall* kept_ptr = kept ? &*kept : nullptr;
    // The cache stands for the devices only while nobody else applied (the same ownership
    // record) and the node has the same interfaces.
    r.used_cache = how == LiveRead::cached_devices && prior && prior->interfaces == desired_names && prior->owned == *owned;
    auto live = [&]() -> backend::Result<Live> {
        if (r.used_cache) {
            Live l = std::move(*prior->live);
            prior->live.reset();
            l.facts.now = now;
            if (auto s = read_tables(backends, desired_names, l, nullptr, kept_ptr); !s) return s.error();
            return l;
        }
        return prefetched ? std::move(read->live) : read_live_bulk(backends, desired_names, now, nullptr, kept_ptr);
    }();
    if (live)
        if (auto s = read_live_rest(backends, r.desired, *owned, *live); !s) live = s.error();
    r.timings.lap(r.used_cache ? "read (cached devices)" : prefetched ? "read (wait)" : "read");
    if (live && live->firewall_kept) {
        const KnownFirewall known = r.used_cache ? KnownFirewall{.rules = &prior->firewall, .digest = prior->firewall_digest}
                                                 : KnownFirewall{};
        if (auto s = settle_kept_firewall(backends, r.desired, *live, known); !s) live = s.error();
        r.timings.lap(live && live->firewall_from_kept ? "firewall kept" : "firewall (read: other rules)");
    }
    if (!live) {
        r.error = live.error();
        return r;
    }
    if (auto s = check_foreign_devices(r.desired, live->state, *owned, adopt); !s) {
        r.error = s.error();
        return r;
    }
    // What IPv6 forwarding needs of the host's other interfaces depends on them: known only now.
    plan::complete_sysctls(r.desired, live->state, *owned);
    // So do the rules other tables' dropping chains need.
    if (r.labels.foreign_accept) r.desired.foreign_rules = plan::foreign_accept_rules(r.desired, live->facts);
    plan::DiffOptions opts;
    opts.exclusive = d.exclusive;
    r.plan = plan::diff(r.desired, r.labels, live->state, owned_for_diff, live->facts, opts);
    if (prior && prior->live) restore_endpoints(r.plan, prior->live->state);
    for (auto& w : plan::foreign_firewall_warnings(r.desired, live->facts, r.labels.foreign_accept)) r.warnings.push_back(std::move(w));
    r.live = std::move(*live);
    r.timings.lap("diff");
    if (mode == Mode::plan) return r;
    // The record after success: built where it is needed, from what the run wants.
    const auto sysctls_after = plan::owned_sysctls_after(r.desired, r.live->state, *owned);
    auto record_after = [&] {
        plan::Ownership o = plan::ownership_after(r.desired, r.labels);
        o.sysctls = sysctls_after;
        return o;
    };

    // A verified read (the plan's, when there is nothing to do; else the one after the apply)
    // leaves a record of the firewall for the next run; one that relied on the record leaves it.
    // A record that cannot be written is none: the next run reads the table.
    // Returns the digest of the record that stands for the verified rules, for the next run's cache.
    auto keep_firewall = [&](const Live& verified) -> std::optional<std::string> {
        if (!kept_firewall) return std::nullopt;
        if (auto k = firewall_to_keep(verified, r.desired)) {
            if (k != kept && !kept_firewall->save(*k)) return std::nullopt;
            return std::move(k->digest);
        }
        if (verified.firewall_from_kept && kept) return kept->digest;
        return std::nullopt;
    };

    // Nothing to do: the diff just computed is the verification. The record may still shrink
    // (a run killed after its changes left the union behind).
    if (r.plan.empty()) {
        r.applied = ApplyResult{};
        plan::Ownership after_success = record_after();
        if (after_success != *owned)
            if (auto s = state.save(after_success); !s) r.error = s.error();
        const auto fw_digest = r.error ? std::nullopt : keep_firewall(*r.live);
        r.leftover = plan::Plan{};
        if (cache && !r.error) *cache = cache_of(*r.live, desired_names, std::move(after_success), fw_digest);
        return r;
    }

    if (before_change)
        if (auto s = before_change(r, *owned); !s) {
            r.error = s.error();
            return r;
        }

    // Written ahead: whatever this run may create is recorded as ours before it exists, and
    // whatever it may remove stays recorded until it is gone, so a run killed at any point
    // leaves nothing the next run cannot find. Without that record nothing is applied.
    // An edit of a large node rarely owns anything new: then the record stands as it is,
    // checked against what the run wants without building, copying or comparing a record.
    std::optional<plan::Ownership> written_ahead;
    if (!covers(*owned, r.desired, sysctls_after, r.labels.reload)) written_ahead = write_ahead(*owned, record_after());
    // A reload is owed from before it runs until it succeeds: a failed one is retried next run.
    for (const auto& op : r.plan.ops)
        if (const auto* rl = std::get_if<plan::OpReload>(&op); rl && !owned->reloads.count(rl->dir)) {
            if (!written_ahead) written_ahead = *owned;
            written_ahead->reloads.insert(rl->dir);
        }
    const plan::Ownership& ahead = written_ahead ? *written_ahead : *owned;
    if (written_ahead && ahead != *owned)
        if (auto s = state.save(ahead); !s) {
            r.error = backend::Error{s.error().code,
                                     s.error().message + "; nothing applied (the ownership record is written before any change)"};
            return r;
        }
    r.timings.lap("state");

    r.applied = apply_plan(backends, r.plan, keys, journal);
    r.timings.lap("apply");
    const plan::Ownership after_success = record_after();
    // Keys the apply generated: the desired state now knows them (for the verification) and
    // they are published.
    for (auto& [ifname, w] : r.desired.interfaces) {
        auto& l = r.labels.interfaces[ifname];
        if (!l.generate_key) continue;
        auto key = keys.load(l.private_key_file);
        if (!key || !key->has_value()) continue;  // not reached: the apply stopped before it
        l.generate_key = false;
        w.public_key = (*key)->public_key();
        r.generated_keys.push_back(l.fleet);
        if (d.keys_dir) publish_key(w);
    }

    // Re-read: after success a fresh diff must be empty (anything left is a bug); after a
    // failure it is what remains to be done, and it says which endpoints were really set.
    // A run that did not touch the firewall leaves its generation as it was: the record the read
    // relied on holds for the verifying read too.
    auto after = read_live(backends, r.desired, r.applied->ok() ? after_success : ahead, now,
                           r.live->firewall_from_kept ? kept_ptr : nullptr);
    r.timings.lap("read again");
    plan::Ownership next = after_success;
    if (!r.applied->ok()) {
        next = ahead;
        if (after) next.endpoints = endpoints_set(*owned, r.desired, after->state);
    }
    if (next != ahead)
        if (auto s = state.save(next); !s && r.applied->ok()) r.error = s.error();  // after a failure, the failure is the news
    r.timings.lap("state");
    if (!after) {
        if (r.applied->ok() && !r.error) r.error = after.error();
        return r;
    }
    r.leftover = plan::diff(r.desired, r.labels, after->state, next, after->facts, opts);
    r.timings.lap("verify");
    if (r.used_cache && !r.error && (!r.applied->ok() || !r.leftover->empty())) {
        // The cached devices were out of date (changed by someone else since the last run):
        // what was applied stays applied; the caller starts over from a full read.
        stale = true;
        return r;
    }
    if (r.applied->ok() && r.leftover->empty() && !r.error) {
        const auto fw_digest = keep_firewall(*after);
        if (cache) *cache = cache_of(std::move(*after), desired_names, std::move(next), fw_digest);
    }
    return r;
}

}  // namespace wgf::apply
