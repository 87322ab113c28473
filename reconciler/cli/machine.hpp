// The real machine: every backend's Linux implementation, wired for one wg-fleet run.
#pragma once

#include <memory>

#include "apply/engine.hpp"
#include "linux/files.hpp"
#include "linux/nft.hpp"
#include "linux/rtnl.hpp"
#include "linux/sysctl.hpp"
#include "linux/wg_select.hpp"
#include "model/spec.hpp"

namespace wgf::cli {

struct Machine {
    std::unique_ptr<linux_::WgSelect> wg;
    std::unique_ptr<linux_::Rtnl> links;
    linux_::Sysctl sysctls;
    std::unique_ptr<linux_::Nft> firewall;
    linux_::LocalFiles files;
    apply::FileKeyStore keys;
    apply::SystemResolver resolver;
    std::unique_ptr<apply::FileStateStore> state;
    std::unique_ptr<apply::FileJournal> journal;
    std::unique_ptr<apply::Backends> backends;

    explicit Machine(const model::Config& cfg);
    apply::Engine engine();
};

}  // namespace wgf::cli
