// The real machine: every backend's implementation (linux/ for the kernel's networking, system/
// for state_dir's files and DNS), wired for one wg-fleet run and handed to the engine.
#pragma once

#include <memory>

#include "apply/engine.hpp"
#include "inputs/rotation.hpp"
#include "linux/command.hpp"
#include "linux/files.hpp"
#include "linux/nft.hpp"
#include "linux/rtnl.hpp"
#include "linux/sysctl.hpp"
#include "linux/userspace_pacing.hpp"
#include "linux/wg_select.hpp"
#include "model/spec.hpp"
#include "system/journal.hpp"
#include "system/kept_firewall.hpp"
#include "system/keys.hpp"
#include "system/resolver.hpp"
#include "system/state_store.hpp"

namespace wgf::cli {

struct Machine {
    std::unique_ptr<linux_::WgSelect> wg;
    std::unique_ptr<linux_::Rtnl> rtnl;
    // rtnl, paced and checked on devices a userspace implementation serves.
    std::unique_ptr<linux_::UserspacePacing> links;
    linux_::Sysctl sysctls;
    std::unique_ptr<linux_::Nft> firewall;
    linux_::LocalFiles files;
    linux_::ShellCommands commands;
    system::FileKeyStore keys;
    system::SystemResolver resolver;
    std::unique_ptr<system::FileStateStore> state;
    // Our firewall table as the last verified apply read it (state_dir/firewall.kept).
    std::unique_ptr<system::FileKeptFirewall> kept_firewall;
    std::unique_ptr<system::FileJournal> journal;
    std::unique_ptr<apply::Backends> backends;
    std::unique_ptr<inputs::FileNextKeys> next_keys;  // keys_dir's <node>.next.pub files

    explicit Machine(const model::Config& cfg);
    apply::Engine engine();
};

}  // namespace wgf::cli
