#include "cli/machine.hpp"

#include <unistd.h>

#include "linux/wg_genl.hpp"

namespace wgf::cli {

Machine::Machine(const model::Config& cfg) {
    linux_::UapiOptions uapi;
    uapi.userspace_command = cfg.userspace;
    wg = std::make_unique<linux_::WgSelect>(std::make_unique<linux_::WgGenl>(), uapi);
    links = std::make_unique<linux_::Rtnl>();
    firewall = std::make_unique<linux_::Nft>();
    state = std::make_unique<system::FileStateStore>(cfg.state_dir);
    backends = std::make_unique<apply::Backends>(apply::Backends{*wg, *links, sysctls, *firewall, files});
}

apply::Engine Machine::engine() {
    apply::Engine e{.backends = *backends,
                    .keys = keys,
                    .resolver = resolver,
                    .state = *state,
                    .journal = journal.get(),
                    .apply_options = {},
                    .adopt = {}};
    // A userspace implementation can die under a burst of address changes: check between chunks.
    e.apply_options.device_alive = [this](const std::string& ifname) {
        if (wg->transport_for(ifname) == linux_::WgSelect::Transport::kernel) return true;
        // Measured here: thousands of back-to-back address changes kill wireguard-go ("no buffer
        // space available") with or without chunks; a millisecond between chunks does not.
        usleep(1000);
        return wg->userspace_alive(ifname);
    };
    return e;
}

}  // namespace wgf::cli
