#include "apply/engine.hpp"

#include <fmt/format.h>

namespace wgf::apply {

RunResult Engine::run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now) {
    RunResult r;
    r.desired = plan::render_host(fleet, node);
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
    resolve_endpoints(r.desired, resolver, r.warnings);

    auto owned = state.load();
    if (!owned) {
        r.error = owned.error();
        return r;
    }
    auto live = read_live(backends, r.desired, *owned, now);
    if (!live) {
        r.error = live.error();
        return r;
    }
    plan::DiffOptions opts;
    for (const auto& [name, f] : cfg.fleets)
        if (f.exclusive) opts.exclusive.insert(f.interface);
    r.plan = plan::diff(r.desired, live->state, *owned, live->facts, opts);
    r.live = std::move(*live);
    if (mode == Mode::plan) return r;

    r.applied = apply_plan(backends, r.plan, keys, journal, apply_options);
    plan::Ownership next = plan::ownership_after(r.desired);
    if (!r.applied->ok()) {
        // Keep claiming what was ours before: a half-applied run must not orphan anything.
        next.interfaces.insert(owned->interfaces.begin(), owned->interfaces.end());
        for (const auto& [i, ks] : owned->peers) next.peers[i].insert(ks.begin(), ks.end());
        next.files.insert(owned->files.begin(), owned->files.end());
    }
    if (next != *owned)
        if (auto s = state.save(next); !s) r.warnings.push_back(s.error().message);
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
    return r;
}

}  // namespace wgf::apply
