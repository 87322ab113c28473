// Sysctls whose desired value depends on the machine, and the record of the sysctls wg-fleet
// changed (so it can put them back). Pure: live values come in as data.
//
// IPv6 forwarding costs a host its router advertisements unless accept_ra is 2: with an
// interface's forwarding on (writing all/forwarding sets every interface's), the kernel accepts
// RAs on it only when accept_ra is 2, and turning all/forwarding on at once purges the
// RA-learned default routes of every interface whose accept_ra is not 2. So when wg-fleet turns
// IPv6 forwarding on, every interface with accept_ra=1 is raised to 2 first (2 means the same as
// 1 while forwarding is off), and so is `default`, which interfaces created later copy. `all` is
// left alone: the kernel reads accept_ra per interface, never all's. wg-fleet's own WireGuard
// interfaces are left alone: they carry no router advertisements, and one created in the same
// apply would only appear after the plan was made.
#pragma once

#include <map>
#include <string>

#include "model/host_state.hpp"
#include "plan/diff.hpp"

namespace wgf::plan {

inline constexpr const char* kIpv6Forwarding = "net/ipv6/conf/all/forwarding";
inline constexpr const char* kIpv6Conf = "net/ipv6/conf";

// "net/ipv6/conf/IF/accept_ra"
std::string accept_ra_key(const std::string& ifname);
// The IF of "net/ipv4/conf/IF/..." or "net/ipv6/conf/IF/..."; empty for other keys.
std::string conf_interface(const std::string& key);
bool is_accept_ra_key(const std::string& key);
// A sysctl wg-fleet may set, with a value it may write: forwarding, accept_ra or
// promote_secondaries of a valid interface name (or all/default), a small number. A record
// read back from state_dir that is anything else is ignored, never written.
bool is_managed_sysctl(const std::string& key, const std::string& value);

// Adds the accept_ra values that IPv6 forwarding needs to `desired`: 2 for every interface whose
// live accept_ra is 1, when wg-fleet turns forwarding on (desired, and off or wg-fleet's own
// live); an accept_ra wg-fleet raised stays desired while forwarding stays on, also when the
// forwarding is someone else's (lowering it then would drop the host's RAs). `live` must hold
// forwarding and the accept_ra of every interface (read_live_rest reads them).
void complete_sysctls(model::HostState& desired, const model::HostState& live, const Ownership& owned);

// The sysctls wg-fleet owns once `desired` is applied: each desired sysctl whose live value
// differs (it is changed now: its live value is the original), and each one recorded before
// that is still desired (its first original is kept). A sysctl already at the desired value is
// not wg-fleet's doing and is never restored.
std::map<std::string, OwnedSysctl> owned_sysctls_after(const model::HostState& desired, const model::HostState& live,
                                                       const Ownership& before);

}  // namespace wgf::plan
