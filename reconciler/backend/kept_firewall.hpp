// Our firewall table as the last verified apply read it, kept between runs
// (state_dir/firewall.kept in system/), so that a run need not read the table again while
// nothing in the ruleset changed: nftables counts every commit, in any table, in one generation
// per network namespace. The record holds that generation as the read saw it
// (FirewallLive::generation: it also names the boot, the network namespace and the table) and a
// digest of the rules the table held, which were exactly the desired ones, without damage. It
// never holds a secret.
#pragma once

#include <optional>
#include <string>

#include "backend/status.hpp"

namespace wgf::backend {

struct KeptFirewall {
    std::string generation;  // FirewallLive::generation of the verified read; never empty
    std::string digest;      // apply::firewall_digest of its rules

    bool operator==(const KeptFirewall&) const = default;
};

class KeptFirewallStore {
public:
    virtual ~KeptFirewallStore() = default;
    // The record; nullopt when there is none, or none this build may trust (another build wrote
    // it, or a file another user owns or may write: such a file is never read).
    virtual std::optional<KeptFirewall> load() = 0;
    // Replaces the record whole (0600): a reader sees the old one or the new one.
    virtual Status save(const KeptFirewall& kept) = 0;
};

}  // namespace wgf::backend
