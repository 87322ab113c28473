// Who is where: the fleets each node belongs to, with its role, and the facts about a member
// that both validation and rendering need (its listen port).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/spec.hpp"

namespace wgf::plan {

struct Membership {
    std::string fleet;
    model::Role role;
    bool operator==(const Membership&) const = default;
};

// node name -> the fleets it belongs to, in fleet-name order.
using NodeIndex = std::map<std::string, std::vector<Membership>>;
NodeIndex index_nodes(const model::Config& cfg);

// The UDP port a member listens on: the fleet's port, for controllers and servers always, for
// peers only in a mesh and only when they have an endpoint (its port is what others dial).
std::optional<uint16_t> listen_port(const model::Fleet& f, model::Role role, const std::string& node);

// The members of a fleet with their roles, controllers first.
const model::Member* find_member(const model::Fleet& f, const std::string& node);

}  // namespace wgf::plan
