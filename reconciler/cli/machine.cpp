#include "cli/machine.hpp"

#include "linux/wg_genl.hpp"

namespace wgf::cli {

Machine::Machine(const model::Config& cfg) {
    linux_::UapiOptions uapi;
    uapi.userspace_command = cfg.userspace;
    wg = std::make_unique<linux_::WgSelect>(std::make_unique<linux_::WgGenl>(), uapi);
    links = std::make_unique<linux_::Rtnl>();
    firewall = std::make_unique<linux_::Nft>();
    state = std::make_unique<apply::FileStateStore>(cfg.state_dir);
    backends = std::make_unique<apply::Backends>(apply::Backends{*wg, *links, sysctls, *firewall, files});
}

apply::Engine Machine::engine() {
    apply::Engine e{*backends, keys, resolver, *state, journal.get(), {}};
    // A userspace implementation can die under a burst of address changes: check between chunks.
    e.apply_options.device_alive = [this](const std::string& ifname) {
        return wg->transport_for(ifname) == linux_::WgSelect::Transport::kernel || wg->userspace_alive(ifname);
    };
    return e;
}

}  // namespace wgf::cli
