// Reading the live state through the backends: what a plan may touch, read in two parts so the
// bulk can start before the desired state is rendered.
#pragma once

#include <map>
#include <set>
#include <string>

#include "apply/backends.hpp"
#include "model/host_state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

struct Live {
    model::HostState state;
    plan::LiveFacts facts;
    std::map<std::string, std::map<model::Key, backend::WgPeerStats>> stats;  // by interface
};

// Reads what the plan may touch: the desired and owned interfaces, our routes, the desired
// sysctls, our firewall table, the desired and owned files.
backend::Result<Live> read_live(Backends& b, const model::HostState& desired, const plan::Ownership& owned, int64_t now,
                                model::Timings* timings = nullptr);

// read_live in two parts. The bulk needs only the names of the desired interfaces: those
// WireGuard devices (with link and addresses; one that exists but is not WireGuard is an error),
// our routes on them and our firewall table. The rest needs the rendered desired state:
// interfaces we own but no longer want (and our routes on them), the sysctls it names, the
// desired and owned files.
backend::Result<Live> read_live_bulk(Backends& b, const std::set<std::string>& desired_interfaces, int64_t now,
                                     model::Timings* timings = nullptr);
backend::Status read_live_rest(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
// The WireGuard devices among `names`; one that exists but is not WireGuard is an error when
// desired, else skipped.
backend::Status read_interfaces(Backends& b, const std::set<std::string>& names, const std::set<std::string>& desired_interfaces,
                                Live& live, model::Timings* timings = nullptr);
// Our routes on `devices` (the desired interfaces; read_live_rest adds those of owned ones) and
// our firewall table.
backend::Status read_tables(Backends& b, const std::set<std::string>& devices, Live& live, model::Timings* timings = nullptr);
// The desired and owned sysctls, and what plan::complete_sysctls needs: IPv6 forwarding and
// every interface's accept_ra.
backend::Status read_sysctls(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
std::set<std::string> interface_names(const model::HostState& desired);

}  // namespace wgf::apply
