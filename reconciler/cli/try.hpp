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
// apply refuses and watch holds.
std::optional<std::string> load_hold(const std::string& state_dir);
void save_hold(const std::string& state_dir, const std::string& digest);
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

struct Verdict {
    bool confirmed = false;
    std::string how;  // confirmed: "health", "probe", "manual", ...; else why it is rolled back
};

// Waits (without the state directory's lock) until the try is confirmed or its deadline
// passes: polls the record (wg-fleet confirm) and, unless manual, the baseline peers' stats and
// the probe. `tick` is called about once a second (a service pings its watchdog).
Verdict wait_for_verdict(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const TrySay& say,
                         const std::function<void()>& tick = {});

// Confirmed: journaled, the record removed, the hold cleared.
void confirm_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& how, const TrySay& say);
// Rolled back (the caller holds the lock): the plan printed, applied, journaled, verified; on
// success the record goes and the try's desired state is held. True when verified.
bool roll_back_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& why, const TrySay& say);

// journal.log's line for a try's events ("try ID started: ...").
void journal_try(Machine& m, const std::string& state_dir, const std::string& line, const backend::Status& result = {});

}  // namespace wgf::cli
