// Reading the live state through the backends: what a plan may touch, read in two parts so the
// bulk can start before the desired state is rendered.
#pragma once

#include <map>
#include <set>
#include <string>

#include "apply/backends.hpp"
#include "backend/kept_firewall.hpp"
#include "model/host_state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

struct Live {
    model::HostState state;
    plan::LiveFacts facts;
    std::map<std::string, std::map<model::Key, backend::WgPeerStats>> stats;  // by interface
    // backend::FirewallLive::generation of the firewall's read; empty when it names none.
    std::string firewall_generation;
    // Set when the read relied on this record and did not read our table (the ruleset was still
    // at its generation): the table's rules are the kept ones, unknown until the desired rules
    // are (settle_kept_firewall).
    std::optional<backend::KeptFirewall> firewall_kept;
    // The table's rules are the kept ones, found to be the desired ones (settle_kept_firewall).
    bool firewall_from_kept = false;
};

// A digest of firewall rules (BLAKE2b-256 over every field of each, in hex): what
// backend::KeptFirewall records of a table's rules.
std::string firewall_digest(const std::map<std::string, model::FwRule>& rules);

// The record a verified apply keeps of its live state's firewall: its generation and the digest
// of its rules, when the table was read whole (not from a record), held exactly the desired
// rules and no damage, and the read named a generation. Nothing otherwise.
std::optional<backend::KeptFirewall> firewall_to_keep(const Live& live, const model::HostState& desired);

// Rules known to have a kept record's digest: those of the last verified run of a long-running
// caller (LiveCache::firewall), with the digest of the record that run kept or relied on.
struct KnownFirewall {
    std::map<std::string, model::FwRule>* rules = nullptr;  // taken when they are the record's
    std::string digest;
};

// A read that relied on a kept record (Live::firewall_kept), once the desired rules are known:
// when their digest is the record's, the table holds exactly them (it held the rules of that
// digest at that generation, and the ruleset is still at it); so it does the rules of `known`
// when theirs is (an edit under watch: the table is still as the last run verified it).
// Otherwise the table is read now.
backend::Status settle_kept_firewall(Backends& b, const model::HostState& desired, Live& live, const KnownFirewall& known = {});

// Reads what the plan may touch: the desired and owned interfaces, our routes, the desired
// sysctls, our firewall table, the desired and owned files.
// `kept`: the firewall kept from the last verified apply, which spares reading our table while
// the ruleset is still at its generation and the desired rules are the kept ones. `timings`:
// a lap per device and table read.
backend::Result<Live> read_live(Backends& b, const model::HostState& desired, const plan::Ownership& owned, int64_t now,
                                const backend::KeptFirewall* kept = nullptr, model::Timings* timings = nullptr);

// read_live in two parts. The bulk needs only the names of the desired interfaces: those
// WireGuard devices (with link and addresses; one that exists but is not WireGuard is an error),
// our routes on them and our firewall table. The rest needs the rendered desired state:
// interfaces we own but no longer want (and our routes on them), the sysctls it names, the
// desired and owned files.
// With `kept`, our table is not read while the ruleset is still at the record's generation
// (Live::firewall_kept; settle_kept_firewall completes it).
backend::Result<Live> read_live_bulk(Backends& b, const std::set<std::string>& desired_interfaces, int64_t now,
                                     model::Timings* timings = nullptr, const backend::KeptFirewall* kept = nullptr);
backend::Status read_live_rest(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
// The WireGuard devices among `names`; one that exists but is not WireGuard is an error when
// desired, else skipped.
backend::Status read_interfaces(Backends& b, const std::set<std::string>& names, const std::set<std::string>& desired_interfaces,
                                Live& live, model::Timings* timings = nullptr);
// Our routes on `devices` (the desired interfaces; read_live_rest adds those of owned ones) and
// our firewall table.
backend::Status read_tables(Backends& b, const std::set<std::string>& devices, Live& live, model::Timings* timings = nullptr,
                            const backend::KeptFirewall* kept = nullptr);
// The desired and owned sysctls, and what plan::complete_sysctls needs: IPv6 forwarding and
// every interface's accept_ra.
backend::Status read_sysctls(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
std::set<std::string> interface_names(const model::HostState& desired);

}  // namespace wgf::apply
