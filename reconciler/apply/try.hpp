// A try (`apply --try`, `watch --try`): a change applied and held pending until it is confirmed,
// or rolled back when its window ends. The record (state_dir/try.json, written before any
// change) holds what the rollback needs: the live state wg-fleet manages as it was, with its
// labels, and the ownership record before. The rollback is a plan of its own: diff(desired =
// that snapshot, live = now, owned = the record now, which covers what the try created),
// applied by the same executor and verified by a fresh diff. Pure logic and the engine side
// here; the record's text is inputs/try_record.hpp, its file and the waiting are cli/'s.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apply/backends.hpp"
#include "apply/execute.hpp"
#include "apply/read_live.hpp"
#include "apply/state.hpp"
#include "model/host_state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

// A peer whose health was `ok` before the change: it must show it is back after it.
struct PeerBaseline {
    std::string ifname;
    model::Key public_key;
    std::string name;            // its node name, "" when none
    int64_t last_handshake = 0;  // before the change
    uint64_t rx_bytes = 0;       // before the change
    // The change ends this peer's session (a new private key on its device, a deleted device, a
    // new endpoint): only a handshake since it shows the peer is back. Received bytes do not:
    // the peer still sends on the old session, which the device can receive but not answer.
    bool needs_handshake = false;

    auto operator<=>(const PeerBaseline&) const = default;
};

struct TryRecord {
    std::string id;
    int64_t started = 0;   // unix seconds: when the record was written, before any change
    int64_t deadline = 0;  // unix seconds: rolled back from then on unless confirmed
    model::HostState snapshot;
    model::Labels labels;  // of the snapshot: each interface's fleet and key file, peer names
    plan::Ownership owned_before;
    std::vector<PeerBaseline> baseline;
    std::string probe;  // "" none
    bool manual = false;
    std::string digest;     // of the node's desired state (inputs::desired_digest)
    int pid = 0;            // the process waiting for the verdict (0: none)
    std::string confirmed;  // "" pending; else how: "manual" (wg-fleet confirm)
    // The node's published public keys (keys_dir/<fleet>/<node>.pub) as the rollback publishes
    // them again: each interface's key before the try.
    std::map<std::string, model::Key> published;

    auto operator<=>(const TryRecord&) const = default;
};

// The record of a try about to apply `desired` over `live` (as read, with `owned` the record
// before): the snapshot is the live state restricted to what wg-fleet manages (the desired and
// owned interfaces, sysctls and files; our routes, rules and firewall table), the baseline the
// peers still desired whose health is `ok` now.
TryRecord make_try(const model::HostState& desired, const model::Labels& labels, const Live& live, const plan::Ownership& owned,
                   int64_t now, int64_t seconds);

// Where a try keeps the private key of a device whose key it replaces or which it deletes:
// state_dir/try-keys/<interface>.key (0600), until the try is confirmed or its hold ends.
std::string kept_key_path(const std::string& state_dir, const std::string& ifname);

// The devices whose private key `plan` replaces (an existing device's, which has sessions) or
// which it deletes: their key must be kept for a rollback.
std::set<std::string> keys_to_keep(const plan::Plan& plan);

struct TryStart {
    std::string state_dir;
    std::optional<std::string> keys_dir;
    std::string node;
    int64_t now = 0;
    int64_t seconds = 0;
};

// The record of a try about to apply `plan` (make_try), with what the rollback needs beyond
// the read: the private key of every device in keys_to_keep, read from the device and kept at
// kept_key_path (the snapshot's labels name that file, so the rollback sets it, or creates
// the device with it), and the public keys to publish again. An error (a device whose key
// cannot be read or kept) means the try cannot be taken back: nothing may be applied.
backend::Result<TryRecord> start_try(Backends& b, KeyStore& keys, const model::HostState& desired, const model::Labels& labels,
                                     const Live& live, const plan::Plan& plan, const plan::Ownership& owned, const TryStart& how);

// Whether a peer is back after the change: a handshake newer than the change (and than the
// one before it), or (unless the change ended its session) received bytes grown since
// `rx_after`, the counter read right after the change. Age alone is not enough: WireGuard does not renew an undisturbed session within 120
// s, so "a handshake less than 180 s old" would confirm a change that broke it.
bool back_again(const PeerBaseline& before, const backend::WgPeerStats& now, int64_t changed, uint64_t rx_after);

// The verdict over all baseline peers: the names of those not back yet (empty: all are).
// `now` and `after` are by interface and key; a peer missing from them is not back.
std::vector<std::string> not_back(const std::vector<PeerBaseline>& baseline,
                                  const std::map<std::string, std::map<model::Key, backend::WgPeerStats>>& now,
                                  const std::map<std::string, std::map<model::Key, backend::WgPeerStats>>& after, int64_t changed);

// What a run does about a desired state whose digest a rollback held back.
enum class Hold {
    none,     // nothing held, or the file was edited since: clear the hold
    held,     // the file still holds the rolled-back state: do not apply it
    retried,  // it is held, but this run tries it again (--try) or was told to apply it anyway
};
Hold hold_verdict(const std::optional<std::string>& held_digest, const std::string& digest, bool trying, bool forced);

struct RollbackResult {
    plan::Plan plan;
    std::optional<ApplyResult> applied;
    std::optional<plan::Plan> leftover;  // a fresh diff after the rollback: empty when verified
    std::optional<backend::Error> error;
    model::Timings timings;  // per phase, for -v
    bool ok() const { return !error && applied && applied->ok() && leftover && leftover->empty(); }
};

// WireGuard devices as a read moments ago left them: the last poll of the process that waited
// for the try's verdict. A rollback may plan from them instead of reading the devices again
// (at 10,000 peers that read is most of a rollback's time).
struct RecentDevices {
    std::map<std::string, backend::WgDeviceLive> devices;  // by interface
    std::chrono::steady_clock::time_point at{};            // when they were read
};
// How old RecentDevices may be for a rollback to plan from them.
inline constexpr std::chrono::seconds kRecentDevicesFor{2};

// Rolls the try back: reads live (the snapshot's interfaces and those owned now), plans
// diff(snapshot, live, owned now), writes the record ahead (what the rollback creates again is
// ours before it exists), applies, restores the record from before the try, publishes the
// public keys from before it again, verifies. With `plan_only`, stops after the plan.
// `recent`, when given and younger than kRecentDevicesFor, stands in for the first read of its
// devices (taken from it: it is used once). The read that verifies is always fresh, and a
// rollback planned from `recent` that does not end verified (something changed a device since)
// is planned and applied again from a fresh read.
RollbackResult roll_back(Backends& backends, KeyStore& keys, StateStore& state, Journal* journal, const TryRecord& t, int64_t now,
                         bool plan_only = false, RecentDevices* recent = nullptr);

}  // namespace wgf::apply
