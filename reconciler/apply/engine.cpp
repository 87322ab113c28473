#include "apply/engine.hpp"

#include <fmt/format.h>

#include "plan/sysctls.hpp"

namespace wgf::apply {

Prefetch::Prefetch(Backends& backends, std::set<std::string> interfaces, int64_t now) : interfaces_(std::move(interfaces)) {
    result_ = std::async(std::launch::async, [&backends, names = interfaces_, now]() -> Read {
        model::Timings t;
        auto live = read_live_bulk(backends, names, now, &t);
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

RunResult Engine::run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch) {
    RunResult r;
    r.desired = plan::render_host(fleet, node);
    r.timings.lap("render");
    const auto& cfg = fleet.cfg;

    // Keys: apply generates a missing key; plan only reads (the plan then says one will be made).
    for (auto& [ifname, w] : r.desired.interfaces) {
        if (mode == Mode::apply) {
            bool generated = false;
            auto key = ensure_node_key(keys, cfg, w.fleet, &generated);
            if (!key) {
                r.error = key.error();
                return r;
            }
            if (generated) r.generated_keys.push_back(w.fleet);
            w.public_key = key->public_key();
            if (cfg.keys_dir) {
                auto s = keys.publish(plan::published_key_path(*cfg.keys_dir, w.fleet, node), *w.public_key);
                if (!s) r.warnings.push_back(s.error().message);
            }
        } else {
            auto key = keys.load(w.private_key_file);
            if (!key) {
                r.error = key.error();
                return r;
            }
            if (key->has_value()) w.public_key = (*key)->public_key();
            else r.warnings.push_back(fmt::format("{}: no private key yet at {}; apply generates it", ifname, w.private_key_file));
        }
    }
    r.timings.lap("keys");
    resolve_endpoints(r.desired, resolver, r.warnings);
    r.timings.lap("resolve");

    // The ownership record, and the live state: prefetched when the prefetch read the
    // interfaces the node has, else read now.
    auto owned = state.load();
    if (!owned) {
        r.error = owned.error();
        return r;
    }
    r.timings.lap("ownership");
    const auto desired_names = interface_names(r.desired);
    std::optional<Prefetch::Read> read;
    if (prefetch) {
        read = prefetch->take();
        r.read_timings = read->timings;
    }
    const bool prefetched = read && prefetch->interfaces() == desired_names;
    auto live = prefetched ? std::move(read->live) : read_live_bulk(backends, desired_names, now);
    if (live)
        if (auto s = read_live_rest(backends, r.desired, *owned, *live); !s) live = s.error();
    r.timings.lap(prefetched ? "read (wait)" : "read");
    if (!live) {
        r.error = live.error();
        return r;
    }
    // What IPv6 forwarding needs of the host's other interfaces depends on them: known only now.
    plan::complete_sysctls(r.desired, live->state, *owned);
    plan::DiffOptions opts;
    for (const auto& [name, f] : cfg.fleets)
        if (f.exclusive) opts.exclusive.insert(f.interface);
    r.plan = plan::diff(r.desired, live->state, *owned, live->facts, opts);
    r.live = std::move(*live);
    r.timings.lap("diff");
    if (mode == Mode::plan) return r;

    r.applied = apply_plan(backends, r.plan, keys, journal, apply_options);
    r.timings.lap("apply");
    plan::Ownership next = plan::ownership_after(r.desired);
    next.sysctls = plan::owned_sysctls_after(r.desired, r.live->state, *owned);
    if (!r.applied->ok()) {
        // Keep claiming what was ours before: a half-applied run must not orphan anything.
        next.interfaces.insert(owned->interfaces.begin(), owned->interfaces.end());
        for (const auto& [i, ks] : owned->peers) next.peers[i].insert(ks.begin(), ks.end());
        next.files.insert(owned->files.begin(), owned->files.end());
        next.sysctls.insert(owned->sysctls.begin(), owned->sysctls.end());  // the first original stays
    }
    if (next != *owned)
        if (auto s = state.save(next); !s) r.warnings.push_back(s.error().message);
    r.timings.lap("state");
    // Nothing was to do: the diff just computed is the verification.
    if (r.plan.empty()) {
        r.leftover = plan::Plan{};
        return r;
    }

    // Re-read: after success a fresh diff must be empty (anything left is a bug); after a
    // failure it is what remains to be done.
    auto after = read_live(backends, r.desired, next, now);
    if (!after) {
        if (r.applied->ok()) r.error = after.error();  // after a failure, the failure is the news
        return r;
    }
    r.leftover = plan::diff(r.desired, after->state, next, after->facts, opts);
    r.timings.lap("verify");
    return r;
}

}  // namespace wgf::apply
