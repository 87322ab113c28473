// Links, addresses and routes over rtnetlink (libnl-route-3): the Linux implementation of
// backend::Links.
//
// Invariants:
// - One netlink socket per Rtnl, opened by the constructor in the calling thread's network
//   namespace; every read and change (including interface name lookups) goes through it, so an
//   Rtnl keeps working on that namespace even when the thread later moves elsewhere.
// - Routes: only those carrying backend::kRouteProtocol in the main table or the exit table
//   (model::kExitTable, an exit node's default routes), on the devices the caller names, are
//   read; deletion names the protocol so the kernel itself refuses to remove anyone else's route.
// - Policy rules: only those carrying backend::kRouteProtocol (FRA_PROTOCOL) at wg-fleet's
//   priorities are read; deletion names the protocol too. libnl's rtnl_rule cannot express
//   suppress_prefixlength or "not", so rules are built and parsed as raw messages here.
// - Addresses read back unmasked (an interface address keeps its host bits), sorted and unique;
//   link-local and kernel-made addresses (SLAAC, temporary) are left out.
// - Errors carry the kernel's errno, not libnl's own codes.
//
// Not thread-safe: one socket, one request in flight.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "linux/nl_ptr.hpp"

namespace wgf::linux_ {

class Rtnl : public backend::Links {
public:
    // Never throws; if the socket cannot be opened every call returns that error.
    Rtnl();
    ~Rtnl() override;
    Rtnl(const Rtnl&) = delete;
    Rtnl& operator=(const Rtnl&) = delete;

    // ok, or why the socket could not be opened.
    backend::Status status() const;

    backend::Result<std::optional<backend::LinkLive>> read_link(const std::string& name) override;
    backend::Result<model::AddressSet> read_addresses(const std::string& name) override;
    backend::Result<std::set<model::Route>> read_routes(const std::set<std::string>& devices) override;
    backend::Status set_mtu(const std::string& name, uint32_t mtu) override;
    backend::Status set_up(const std::string& name, bool up) override;
    // IPv6 with IFA_F_NODAD (usable at once) and with the connected prefix route. An address that
    // is already there is an EEXIST error.
    backend::Status add_address(const std::string& name, const model::Prefix& addr) override;
    // A missing address is an EADDRNOTAVAIL error.
    backend::Status del_address(const std::string& name, const model::Prefix& addr) override;
    // Main table, scope link, our protocol; an existing route is an EEXIST error.
    backend::Status add_route(const model::Route& route) override;
    // Only a route of ours: one that is not there or carries another protocol is ESRCH.
    backend::Status del_route(const model::Route& route) override;
    backend::Result<std::set<model::PolicyRule>> read_rules() override;
    // An existing rule is an EEXIST error.
    backend::Status add_rule(const model::PolicyRule& rule) override;
    // Only a rule of ours: one that is not there or carries another protocol is ENOENT.
    backend::Status del_rule(const model::PolicyRule& rule) override;
    // Deletes the link of that name, whatever its kind (the caller checks it is its own); a
    // missing link is an ENODEV error.
    backend::Status delete_link(const std::string& name);

private:
    backend::Result<std::shared_ptr<rtnl_link>> get_link(const std::string& name, const std::string& what);
    backend::Result<int> ifindex(const std::string& name, const std::string& what);
    backend::Status addr_change(int ifindex, const model::Prefix& addr, bool add, const std::string& what);
    backend::Status route_change(const model::Route& route, bool add);
    backend::Status rule_change(const model::PolicyRule& rule, bool add);
    backend::Status link_change(const std::string& name, std::optional<uint32_t> mtu, std::optional<bool> up, const std::string& what);
    // errno for a libnl result: the kernel's own when it sent one, else mapped from libnl's code.
    backend::Error nl_error(int nlerr, const std::string& what) const;

    NlPtr<nl_sock> sock_;
    int open_error_ = 0;    // libnl code from opening the socket, 0 = open
    int kernel_errno_ = 0;  // errno of the last NLMSG_ERROR the kernel sent; reset per request
};

}  // namespace wgf::linux_
