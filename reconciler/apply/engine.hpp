// One reconcile run for one node: render desired -> keys -> resolve endpoints -> read live ->
// diff -> (print | apply -> re-read -> verify the diff is empty). Shared by plan, apply, watch
// and status.
#pragma once

#include <future>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apply/keys.hpp"
#include "apply/reconcile.hpp"
#include "apply/state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"
#include "plan/render.hpp"

namespace wgf::apply {

enum class Mode { plan, apply };

struct RunResult {
    model::HostState desired;
    model::Labels labels;                      // of desired
    plan::Plan plan;
    std::optional<ApplyResult> applied;
    std::vector<std::string> warnings;
    std::vector<std::string> generated_keys;   // fleets whose key was generated in this run
    std::optional<Live> live;                  // as read before the plan
    std::optional<plan::Plan> leftover;        // a fresh diff after apply: must be empty after success
    std::optional<backend::Error> error;       // reading live state or state_dir failed
    model::Timings timings;                    // per phase, for -v
    model::Timings read_timings;               // the prefetch's phases, on its own thread

    // Conflicts (managed paths wg-fleet did not write) fail the run: the rest is applied, the
    // node does not match the fleet.
    bool ok() const { return !error && (!applied || applied->ok()) && !(leftover && !leftover->empty()) && plan.conflicts.empty(); }
    bool converged_with_leftover() const { return applied && applied->ok() && leftover && !leftover->empty(); }
};

// The bulk of the live state (the WireGuard devices with links and addresses, our routes and
// firewall table), read on a thread of its own from the moment the file is parsed, while the
// caller validates and renders: on a 10,000-peer wireguard-go device that read takes about as
// long as validating and rendering. Reading changes nothing, so a read whose result is not
// used (an invalid file) costs only the wait in the destructor.
class Prefetch {
public:
    struct Read {
        backend::Result<Live> live;
        model::Timings timings;  // on the reading thread
    };
    // Starts reading these interfaces now.
    Prefetch(Backends& backends, std::set<std::string> interfaces, int64_t now);
    ~Prefetch();
    Prefetch(const Prefetch&) = delete;
    Prefetch& operator=(const Prefetch&) = delete;

    const std::set<std::string>& interfaces() const { return interfaces_; }
    // Waits for the read; once only.
    Read take();

private:
    std::set<std::string> interfaces_;
    std::future<Read> result_;
};

// The ownership record written before an apply: the union of what was ours and what the run
// may create; endpoints stay as they were (they record what was set).
plan::Ownership write_ahead(const plan::Ownership& before, const plan::Ownership& after);
// After a failed apply: the endpoints recorded before, plus each desired endpoint the device
// now really has. An endpoint that a failed set did not apply is not recorded, so the roaming
// rule cannot mistake the old live endpoint for a roamed one.
std::map<std::string, std::map<model::Key, model::Endpoint>> endpoints_set(const plan::Ownership& before, const model::HostState& desired,
                                                                           const model::HostState& live);
// A desired WireGuard device that exists but is not recorded as ours, and not to be adopted,
// is an error: wg-fleet never takes over a device it did not create unless told to.
backend::Status check_foreign_devices(const model::HostState& desired, const model::HostState& live, const plan::Ownership& owned,
                                      const std::set<std::string>& adopt);
// Where the managed files land, resolved (symbolic links, `..`, bind mounts): two desired paths
// that are one file, or one on a key file or inside state_dir, is an error (nothing may be
// written). Owned paths that are a desired file under another name are dropped from `owned`, so
// the diff does not remove the file it writes.
backend::Status check_file_places(backend::Files& files, const model::HostState& desired, const model::Labels& labels,
                                  const std::string& state_dir, plan::Ownership& owned);

// The interfaces render_host gives `node`: one per fleet it belongs to.
std::set<std::string> interfaces_of(const model::Config& cfg, const std::string& node);

struct Engine {
    Backends& backends;
    KeyStore& keys;
    Resolver& resolver;
    StateStore& state;
    Journal* journal = nullptr;
    // WireGuard devices to take over although state.json does not record them as ours
    // (`--adopt IF`, e.g. a wg-quick device); any other such device is refused.
    std::set<std::string> adopt;

    // With a prefetch started for the interfaces the node turns out to have, its read is used
    // (and completed with owned interfaces no longer desired, sysctls and files); otherwise the
    // live state is read here.
    RunResult run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch = nullptr);
};

}  // namespace wgf::apply
