// One reconcile run for one node: render desired -> keys -> resolve endpoints -> read live ->
// diff -> (print | apply -> re-read -> verify the diff is empty). Shared by plan, apply, watch
// and status.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apply/keys.hpp"
#include "apply/reconcile.hpp"
#include "apply/state.hpp"
#include "plan/diff.hpp"
#include "plan/render.hpp"

namespace wgf::apply {

enum class Mode { plan, apply };

struct RunResult {
    model::HostState desired;
    plan::Plan plan;
    std::optional<ApplyResult> applied;
    std::vector<std::string> warnings;
    std::vector<std::string> generated_keys;   // fleets whose key was generated in this run
    std::optional<Live> live;                  // as read before the plan
    std::optional<plan::Plan> leftover;        // a fresh diff after apply: must be empty after success
    std::optional<backend::Error> error;       // reading live state or state_dir failed

    bool ok() const { return !error && (!applied || applied->ok()) && !(leftover && !leftover->empty()); }
    bool converged_with_leftover() const { return applied && applied->ok() && leftover && !leftover->empty(); }
};

struct Engine {
    Backends& backends;
    KeyStore& keys;
    Resolver& resolver;
    StateStore& state;
    Journal* journal = nullptr;
    ApplyOptions apply_options;

    RunResult run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now);
};

}  // namespace wgf::apply
