// Address changes on a device a userspace WireGuard implementation serves, paced and checked.
//
// wireguard-go listens for address events on its own netlink socket and exits when that socket
// overflows ("no buffer space available"). Chunking alone does not prevent this, since every
// change already waits for the kernel's ack: thousands of back-to-back changes kill it, while a
// short pause every few changes does not. And a process that died takes its device with it, so
// the apply must stop right there, saying so, rather than fail later on a device that is gone.
//
// So UserspacePacing wraps the real backend::Links (cli/ wraps it around Rtnl for every run):
// on a userspace device, every `chunk` address changes it pauses, and after every change it
// checks that the process still answers; a dead one fails that change with EIO. Kernel devices
// pass straight through, as does everything that is not an address change.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>

#include "backend/backend.hpp"

namespace wgf::linux_ {

class WgSelect;

// Which devices a userspace implementation serves, and whether its process still answers.
struct UserspaceProbe {
    std::function<bool(const std::string& ifname)> is_userspace;
    std::function<bool(const std::string& ifname)> alive;
};

// The probe of the WireGuard backend wg-fleet uses (its transport and liveness per device).
UserspaceProbe userspace_probe(const WgSelect& wg);

struct PacingOptions {
    size_t chunk = 16;            // address changes on one device between pauses (0 is 1)
    std::function<void()> pause;  // unset: a millisecond's sleep
};

class UserspacePacing : public backend::Links {
public:
    UserspacePacing(backend::Links& inner, UserspaceProbe probe, PacingOptions options = {});

    backend::Result<std::optional<backend::LinkLive>> read_link(const std::string& name) override;
    backend::Result<model::AddressSet> read_addresses(const std::string& name) override;
    backend::Result<std::set<model::Route>> read_routes(const std::set<std::string>& devices) override;
    backend::Status set_mtu(const std::string& name, uint32_t mtu) override;
    backend::Status set_up(const std::string& name, bool up) override;
    backend::Status add_address(const std::string& name, const model::Prefix& addr) override;
    backend::Status del_address(const std::string& name, const model::Prefix& addr) override;
    backend::Status add_route(const model::Route& route) override;
    backend::Status del_route(const model::Route& route) override;
    backend::Result<std::set<model::PolicyRule>> read_rules() override;
    backend::Status add_rule(const model::PolicyRule& rule) override;
    backend::Status del_rule(const model::PolicyRule& rule) override;

private:
    // After an address change on `name` that succeeded: pace and check.
    backend::Status after_change(const std::string& name);

    backend::Links& inner_;
    UserspaceProbe probe_;
    PacingOptions options_;
    std::map<std::string, size_t> changes_;  // address changes so far, by device
};

}  // namespace wgf::linux_
