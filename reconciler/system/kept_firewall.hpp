// The firewall kept from the last verified apply (backend/kept_firewall.hpp) as
// state_dir/firewall.kept: 0600, replaced atomically, three lines (a format line naming the build
// that wrote it, the generation, the digest). Another build's record is none: how a table reads
// may differ between builds.
#pragma once

#include <optional>
#include <string>

#include "backend/kept_firewall.hpp"

namespace wgf::system {

class FileKeptFirewall : public backend::KeptFirewallStore {
public:
    // `build`: this build's identity (system::build_id()); empty: nothing is kept or loaded.
    FileKeptFirewall(std::string state_dir, std::string build) : dir_(std::move(state_dir)), build_(std::move(build)) {}
    std::optional<backend::KeptFirewall> load() override;
    backend::Status save(const backend::KeptFirewall& kept) override;
    std::string path() const { return dir_ + "/firewall.kept"; }

private:
    std::string dir_;
    std::string build_;
};

}  // namespace wgf::system
