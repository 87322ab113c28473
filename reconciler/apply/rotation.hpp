// Key rotation in a run (`wg-fleet rotate` publishes, every run acts): before the plan, the
// published next keys of the node's fleets are read and every switch that is due is made in the
// desired state. The node's own: its next key is moved into place (apply; plan shows it), the
// new public key published and the next key's file removed. Another member's: its peer entry
// gets the new key, keeping its allowed IPs, keepalive and endpoint (the diff makes that one key
// swap). Switches not due yet give the time of the earliest, for `watch` to wake then.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "apply/keys.hpp"
#include "backend/journal.hpp"
#include "model/host_state.hpp"
#include "plan/rotation.hpp"

namespace wgf::apply {

// The switches a long-running caller (watch) made, kept across runs and reloads: its loaded
// configuration still has the old key of a member whose next key file is gone once the switch
// is complete, until the file is loaded again.
struct RotationMemory {
    std::map<std::pair<std::string, std::string>, plan::PeerSwitch> switched;  // by (interface, node)
};

struct RotationOutcome {
    std::optional<int64_t> next_switch;     // the earliest switch not due yet
    std::vector<std::string> warnings;      // refused or inconsistent next keys
    std::vector<std::string> own_switched;  // fleets whose own key switched (apply)
    std::vector<plan::PeerSwitch> peers;    // peers whose key was switched in the desired state
};

struct RotationInputs {
    backend::KeyStore& keys;
    backend::NextKeys& next;
    backend::Journal* journal = nullptr;
    RotationMemory* memory = nullptr;
};

// `desired` carries the node's current public keys (loaded by the run); `apply`: the run may
// move files (the own switch), else it only shows what is due.
RotationOutcome apply_rotations(const RotationInputs& in, model::HostState& desired, model::Labels& labels, const std::string& keys_dir,
                                const std::string& node, bool apply, int64_t now);

}  // namespace wgf::apply
