#include "cli/machine.hpp"

#include "linux/wg_genl.hpp"
#include "system/desired_cache.hpp"

namespace wgf::cli {

Machine::Machine(const model::Config& cfg) {
    linux_::UapiOptions uapi;
    uapi.userspace_command = cfg.userspace;
    wg = std::make_unique<linux_::WgSelect>(std::make_unique<linux_::WgGenl>(), uapi);
    rtnl = std::make_unique<linux_::Rtnl>();
    links = std::make_unique<linux_::UserspacePacing>(*rtnl, linux_::userspace_probe(*wg));
    firewall = std::make_unique<linux_::Nft>();
    state = std::make_unique<system::FileStateStore>(cfg.state_dir);
    kept_firewall = std::make_unique<system::FileKeptFirewall>(cfg.state_dir, system::build_id());
    backends = std::make_unique<apply::Backends>(apply::Backends{*wg, *links, sysctls, *firewall, files, &commands});
    next_keys = std::make_unique<inputs::FileNextKeys>(cfg);
}

apply::Engine Machine::engine() {
    apply::Engine e{.backends = *backends, .keys = keys, .resolver = resolver, .state = *state, .journal = journal.get(), .adopt = {}};
    e.next_keys = next_keys.get();
    e.kept_firewall = kept_firewall.get();
    return e;
}

}  // namespace wgf::cli
