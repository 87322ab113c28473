// A try's verdict, one check at a time, and the state a rollback's hold keeps in force. Both
// waits use the same check: `apply --try` loops over it, `watch --try` runs one at each wake of
// its loop (the loop goes on meanwhile). Pure: the record's file, the devices' counters and the
// probe are handed in by cli/.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "apply/try.hpp"
#include "backend/backend.hpp"
#include "backend/status.hpp"

namespace wgf::apply {

using PeerStats = std::map<std::string, std::map<model::Key, backend::WgPeerStats>>;  // by interface, then key

struct Verdict {
    bool confirmed = false;
    std::string how;  // confirmed: "health", "probe", "manual", ...; else why it is rolled back
};

// What state_dir/try.json says at a check. An unreadable file says nothing (the check goes on).
struct TryOnDisk {
    bool gone = false;        // settled by another run
    std::string confirmed{};  // `wg-fleet confirm` (or another run) confirmed it: how
};

// What one wait carries from check to check.
struct VerdictWait {
    PeerStats after{};                   // the counters right after the change: received bytes grow from here
    std::vector<std::string> missing{};  // baseline peers not back at the last check
    std::string probe_error{};           // the probe's last failure
    std::string last_said{};             // the last "waiting: ..." line
};

struct VerdictStep {
    std::optional<Verdict> verdict{};  // none: still pending
    std::string say{};                 // a "waiting: ..." line to show, "" when it did not change
};

// One check: the record first (settled elsewhere, confirmed), then the deadline (rolled back,
// saying why), then, unless manual, the baseline peers' counters (`stats`, read at each check)
// and, once every one is back, the probe (`probe`, run only then).
VerdictStep check_verdict(const TryRecord& t, VerdictWait& w, const TryOnDisk& on_disk, int64_t now,
                          const std::function<PeerStats()>& stats, const std::function<backend::Status()>& probe);

// The state a hold keeps in force after a rollback (watch repairs drift back to it): the
// rollback's snapshot, with each peer's endpoint the one wg-fleet had set before the try, or
// none. The snapshot's endpoints are where the peers were seen at the try; a peer that roams
// afterwards is followed (plan::diff keeps an endpoint learned since the one applied), not
// sent back there, and a peer removed by hand comes back with its configured endpoint.
TryRecord held_target(const TryRecord& t);

}  // namespace wgf::apply
