// Where a forward to an explicit address (`to: 10.50.0.12`) leads: the prefixes a node reaches
// over one of its fleets. Validation and rendering both pick the forward's fleet from here, so
// the fleet `check` accepts is the fleet whose interface `apply` masquerades on.
#pragma once

#include <string>
#include <vector>

#include "model/spec.hpp"
#include "plan/address_plan.hpp"
#include "plan/index.hpp"

namespace wgf::plan {

struct Reach {
    model::Prefix prefix;
    std::string announcer;  // the member whose `routes:` hold it; empty for the fleet's own addresses
};

// What `node` reaches through fleet `fleet`: the fleet's IPv6 prefix (clan /40 or subnet), its
// `ipv4:` pool, and every prefix another member announces. The node's own `routes:` are reached
// without the fleet and are not listed.
std::vector<Reach> reachable_over(const model::Config& cfg, const AddressPlan& plan, const std::string& fleet, const std::string& node);

// The fleets among `memberships` whose reachable prefixes hold `addr`, in membership order.
std::vector<std::string> fleets_reaching(const model::Config& cfg, const AddressPlan& plan, const std::vector<Membership>& memberships,
                                         const std::string& node, const model::IpAddr& addr);

}  // namespace wgf::plan
