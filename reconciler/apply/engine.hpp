// One reconcile run for one node: render desired -> keys -> resolve endpoints -> read live ->
// diff -> (print | apply -> re-read -> verify the diff is empty). Shared by plan, apply, watch
// and status.
#pragma once

#include <functional>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apply/keys.hpp"
#include "apply/reconcile.hpp"
#include "apply/rotation.hpp"
#include "apply/state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"
#include "plan/render.hpp"

namespace wgf::apply {

enum class Mode { plan, apply };

struct RunResult {
    model::HostState desired;
    model::Labels labels;  // of desired
    plan::Plan plan;
    std::optional<ApplyResult> applied;
    std::vector<std::string> warnings;
    std::vector<std::string> generated_keys;  // fleets whose key was generated in this run
    std::optional<Live> live;                 // as read before the plan
    std::optional<plan::Plan> leftover;       // a fresh diff after apply: must be empty after success
    std::optional<backend::Error> error;      // reading live state or state_dir failed
    model::Timings timings;                   // per phase, for -v
    model::Timings read_timings;              // the prefetch's phases, on its own thread
    bool used_cache = false;                  // the devices came from the LiveCache, not a read
    RotationOutcome rotation;                 // key switches made in the desired state, and the next one due

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
    // The firewall kept from the last verified apply, known once the caller knows whether the
    // run is likely to want the rules it records (its desired state came from the cache): the
    // read waits for it after the devices. Nothing, or a promise given up: the table is read.
    using KeptFuture = std::shared_future<std::optional<backend::KeptFirewall>>;
    // Starts reading these interfaces now; with `kept`, our table only if the ruleset changed
    // since the record (Live::firewall_kept).
    Prefetch(Backends& backends, std::set<std::string> interfaces, int64_t now, KeptFuture kept = {});
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
// Whether `before` already records everything write_ahead would add of `after` (then
// write_ahead(before, after) == before).
bool covers(const plan::Ownership& before, const plan::Ownership& after);
// The same as covers(before, after) for `after` = ownership_after(desired, labels) with these
// sysctls and labels.reload,
// without building it: a walk over what `desired` has.
bool covers(const plan::Ownership& before, const model::HostState& desired, const std::map<std::string, plan::OwnedSysctl>& sysctls,
            const std::optional<model::FileReload>& reload = std::nullopt);
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

// How a run reads the WireGuard devices. Only a run for an edit of the configuration may trust
// the live state the last verified run left behind (LiveCache): the configuration changed, the
// machine need not have. Every other run (start, signal, tick, a one-shot command) reads
// everything, which is how drift and changes made by others are found.
enum class LiveRead { full, cached_devices };

// The WireGuard devices as the last verified run of a long-running caller (watch) saw them:
// the expensive part of the live state (routes, firewall, sysctls and files are cheap and read
// on every run). Whatever run uses it gives it up; only a run that applied and verified (or
// found nothing to do) leaves a new one, so a failed apply, a failed read or a verification
// that still differs leaves none.
struct LiveCache {
    std::optional<Live> live;          // the devices, their stats and handshakes; nothing else
    std::set<std::string> interfaces;  // the desired interfaces of that run
    plan::Ownership owned;             // the ownership record that run left: a different one now means
                                       // someone else applied in between
    // Our table's rules as that run verified them, and the digest of the firewall record it kept
    // or relied on for them (empty: none). While the ruleset is at that record's generation the
    // table holds them, and an edit need not read it (settle_kept_firewall).
    std::map<std::string, model::FwRule> firewall;
    std::string firewall_digest;
};

// A peer about to be added without a desired endpoint (the other side dials in) that the last
// verified live state had with an endpoint was removed by someone else: it gets the endpoint
// last seen for it back, so its session resumes at once instead of when the other side next
// rekeys. The diff leaves a live endpoint alone where none is desired, so this changes nothing
// else.
void restore_endpoints(plan::Plan& plan, const model::HostState& last_verified);

// The interfaces render_host gives `node`: one per fleet it belongs to.
std::set<std::string> interfaces_of(const model::Config& cfg, const std::string& node);

// What a run needs of the fleet for one node: the desired state as rendered (no key loaded, no
// endpoint name resolved: both are done by every run) and the few settings of the file the
// engine reads. A copy kept by apply/desired_cache stands in for the fleet when nothing it was
// made from has changed.
struct Desired {
    model::HostState state;
    model::Labels labels;
    std::string state_dir;
    std::optional<std::string> keys_dir;
    std::set<std::string> exclusive;  // the interfaces of fleets with exclusive: true

    auto operator<=>(const Desired&) const = default;
};
Desired render_desired(const plan::Fleetwide& fleet, const std::string& node);

struct Engine {
    Backends& backends;
    KeyStore& keys;
    Resolver& resolver;
    StateStore& state;
    Journal* journal = nullptr;
    // WireGuard devices to take over although state.json does not record them as ours
    // (`--adopt IF`, e.g. a wg-quick device); any other such device is refused.
    std::set<std::string> adopt;
    // Kept by the caller between runs (watch); null for one-shot commands.
    LiveCache* cache = nullptr;
    // A try (apply --try): called once an applying run's plan is known and not empty, before
    // anything is written (the ownership record included), with the run so far (its live state
    // as read) and the record before. An error ends the run with nothing applied.
    std::function<backend::Status(const RunResult&, const plan::Ownership&)> before_change = nullptr;
    // The published next keys (`wg-fleet rotate`): with keys_dir, every run makes the switches
    // that are due. Null: none are read.
    backend::NextKeys* next_keys = nullptr;
    // Kept by the caller between runs (watch): the switches made, for as long as the loaded
    // configuration has the old keys.
    RotationMemory* rotations = nullptr;
    // Our firewall table as the last verified apply read it (backend/kept_firewall.hpp): a run
    // reads the table only when the ruleset changed since, or the desired rules are others;
    // an apply that ends verified keeps a new record. Null: the table is read every time.
    backend::KeptFirewallStore* kept_firewall = nullptr;

    // With a prefetch started for the interfaces the node turns out to have, its read is used
    // (and completed with owned interfaces no longer desired, sysctls and files); otherwise the
    // live state is read here. An edit with a cache that is still valid uses its devices
    // instead of reading them: the change is applied (and journaled) before the verifying read.
    // If that cached state turns out stale (the apply fails or the verification still differs),
    // the run starts over from a full read.
    RunResult run(const plan::Fleetwide& fleet, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch = nullptr,
                  LiveRead how = LiveRead::full);
    // The same from a desired state already rendered (moved into the result: a caller that keeps
    // it passes a copy).
    RunResult run(Desired desired, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch = nullptr,
                  LiveRead how = LiveRead::full);

private:
    // One run, from a desired state it takes over. `stale` is set when the cached devices turned
    // out out of date: the caller starts over from a full read.
    RunResult run_once(Desired desired, const std::string& node, Mode mode, int64_t now, Prefetch* prefetch, LiveRead how, bool& stale);
};

}  // namespace wgf::apply
