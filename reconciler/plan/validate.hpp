// Semantic validation of a parsed configuration: cross references, the address plan's collisions,
// overlaps between fleets, per-node clashes, forwards and HTTP routes. Diagnostics are located
// through the tree the configuration was parsed from.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "config/tree.hpp"
#include "model/spec.hpp"
#include "plan/address_plan.hpp"
#include "plan/index.hpp"

namespace wgf::plan {

// `broken`: what the parse could not read (config::Parsed::broken); the checks that depend on it
// are skipped, the others run, so one run reports a file's structural and cross-reference errors.
void validate(const model::Config& cfg, const AddressPlan& plan, const config::Node& tree, config::Diagnostics& diags,
              const config::Broken& broken = {});
// The same with the node index already built (Fleetwide has one).
void validate(const model::Config& cfg, const AddressPlan& plan, const NodeIndex& index, const config::Node& tree,
              config::Diagnostics& diags, const config::Broken& broken = {});

// Parsed form of an http_routes[].to URL.
struct Url {
    std::string scheme, host, path;
    uint16_t port = 0;
};
std::optional<Url> parse_url(std::string_view text);

}  // namespace wgf::plan
