// The DNS phase of a run: endpoint names in the desired state become addresses.
#pragma once

#include <string>
#include <vector>

#include "backend/resolver.hpp"
#include "model/host_state.hpp"

namespace wgf::apply {

using backend::Resolver;

// Replaces DNS names in desired endpoints by addresses. A name that does not resolve leaves that
// peer without an endpoint and adds a warning; the rest converges.
void resolve_endpoints(model::HostState& desired, const model::Labels& labels, Resolver& resolver, std::vector<std::string>& warnings);

}  // namespace wgf::apply
