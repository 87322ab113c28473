// Tries (apply --try, watch --try, confirm): the pending record in state_dir (try.json), the
// hold a rollback leaves on the desired state it took back (try-held), waiting for the verdict,
// and settling it: confirmed (the record goes) or rolled back (apply::roll_back, printed like a
// plan). Shared by apply, watch, plan, status and confirm.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "apply/engine.hpp"
#include "apply/try.hpp"
#include "apply/try_verdict.hpp"
#include "backend/status.hpp"
#include "cli/machine.hpp"

namespace wgf::cli {

std::string try_file(const std::string& state_dir);
// "2026-12-01T02:42:00Z"
std::string utc_time(int64_t t);
// The pending try, none, or why try.json cannot be read.
backend::Result<std::optional<apply::TryRecord>> load_try(const std::string& state_dir);
backend::Status save_try(const std::string& state_dir, const apply::TryRecord& t);

// What a try and its hold identify a desired state by: inputs::desired_digest of the file's
// part for this node, with the public keys of the interfaces' key files (a try of a replaced
// key file is held until the file or the key changes).
std::string tried_digest(Machine& m, const apply::Desired& desired);

// The digest of a desired state a rollback took back: while the file renders to it, plain
// apply refuses and watch holds the state the rollback restored. Next to it, try-held.json
// (0600, try.json's format): the rolled-back try's record, whose snapshot is that state, so a
// watch started later keeps it in force too.
std::optional<std::string> load_hold(const std::string& state_dir);
// The record the hold keeps in force: none for a hold written before there was one.
backend::Result<std::optional<apply::TryRecord>> load_held_record(const std::string& state_dir);
void save_hold(const std::string& state_dir, const apply::TryRecord& t);
void clear_hold(const std::string& state_dir);

// "pending try 1764556800, deadline 2026-12-01T02:42:00Z, rollback in 95 s" (or "rollback
// overdue: ..." once the deadline passed, "confirmed" once confirmed).
std::string describe_try(const apply::TryRecord& t, int64_t now);

// The kept keys of tries (apply::kept_key_path) removed: the try they were kept for is
// confirmed, or the hold that kept them ended.
void forget_kept_keys(const std::string& state_dir);

struct TryBegin {
    int64_t seconds = 0;
    std::string probe;  // "" none
    bool manual = false;
    std::string digest;  // of the desired state tried (for the hold after a rollback)
    std::string detail;  // appended to the journal's "try ID started: ..." line
};

// For Engine::before_change: the record of the try about to apply `run` (apply::start_try:
// the snapshot, the kept private keys, the published keys), written to state_dir before any
// change, and journaled. An error means nothing may be applied.
backend::Result<apply::TryRecord> begin_try(Machine& m, const std::string& state_dir, const std::optional<std::string>& keys_dir,
                                            const std::string& node, const apply::RunResult& run, const plan::Ownership& owned,
                                            const TryBegin& how);

// Where settling a try says what it does: lines for the operator (stdout, or the log).
struct TrySay {
    std::function<void(const std::string&)> info = nullptr;
    std::function<void(const std::string&)> error = nullptr;
    bool color = false;
    // -v: the rollback's phases (the benchmark reads them), on standard error or the log.
    std::function<void(const std::string&)> timing = nullptr;
};

using Verdict = apply::Verdict;

// The verdict on one try, a check at a time (watch --try: one at each wake of its loop), without
// the state directory's lock: the record (wg-fleet confirm), the deadline and, unless manual,
// the baseline peers' counters and the probe (apply::check_verdict decides). The counters right
// after the change are read when it is made: make it right after the try's apply. Keeps no
// reference to the machine, which a reload of watch's configuration replaces. In the window's
// last second it reads the snapshot's devices as well (take_recent: a rollback at the deadline
// plans from them, so it reads each device once, to verify).
class VerdictCheck {
public:
    VerdictCheck(Machine& m, std::string state_dir, apply::TryRecord t);
    // nullopt: still pending. Says the "waiting: ..." lines as they change.
    std::optional<Verdict> step(Machine& m, const TrySay& say);
    const apply::TryRecord& record() const { return t_; }
    // The devices as the last check read them, for the rollback to plan from: the baseline's,
    // and in the window's last second the snapshot's too.
    apply::RecentDevices take_recent() { return std::move(recent_); }

private:
    std::string state_dir_;
    apply::TryRecord t_;
    apply::VerdictWait wait_;
    apply::RecentDevices recent_;
};

// Waits (without the state directory's lock) until the try is confirmed or its deadline
// passes: a VerdictCheck every half second. `tick` is called before each (a service pings its
// watchdog). `recent`, when given, gets the devices as the last check read them.
Verdict wait_for_verdict(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const TrySay& say,
                         const std::function<void()>& tick = {}, apply::RecentDevices* recent = nullptr);

// Confirmed: journaled, the record removed, the hold cleared.
void confirm_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& how, const TrySay& say);
// Rolled back (the caller holds the lock): the plan printed, applied, journaled, verified; on
// success the record goes and the try's desired state is held. True when verified. `recent`:
// the devices as the process that waited for the verdict last read them (apply::roll_back).
bool roll_back_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& why, const TrySay& say,
                   apply::RecentDevices* recent = nullptr);

// While the hold is on (watch): the state the rollback of `held` restored is applied again
// where the node drifted from it (apply::held_target: a roaming peer is followed), journaled and
// verified like the rollback (the caller holds the lock). The operations applied: 0 when
// nothing drifted, -1 when the repair failed (said).
int repair_held(Machine& m, const std::string& state_dir, const apply::TryRecord& held, const std::string& why, const TrySay& say);

// journal.log's line for a try's events ("try ID started: ...").
void journal_try(Machine& m, const std::string& state_dir, const std::string& line, const backend::Status& result = {});

}  // namespace wgf::cli
