// A node's desired state as a NixOS module: the same render_host() the reconciler applies, said
// with NixOS options instead of netlink calls, so a NixOS machine configures itself natively.
// Pure: no I/O, and no key material: the module names the private key file, never a key.
//
// What maps where:
//   interfaces, addresses, peers     networking.wireguard.interfaces.<if>
//   routes                           peers' allowedIPs (allowedIPsAsRoutes), or the interface's
//                                    postSetup when a route needs a preferred source
//   UDP listen ports                 networking.firewall.allowedUDPPorts
//   forward accepts                  networking.firewall.extraForwardRules (under filterForward)
//   port forwards (DNAT, masquerade) networking.nftables.tables."wg-fleet"
//   forwarding sysctls               boot.kernel.sysctl
//   hosts file                       networking.hosts
//   HTTP route files under /etc      environment.etc
// What has no NixOS option is said in a comment of the module.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plan/render.hpp"

namespace wgf::plan {

// `s` as a Nix double-quoted string literal: `"`, `\` and `${` escaped, control characters as
// escapes, so any text (paths, names) reads back as itself.
std::string nix_string(std::string_view s);

// The NixOS module of `node` (a function of { config, lib, pkgs, ... }). `source` names the
// fleet file in the module's header comment.
std::string render_nixos_module(const Fleetwide& fw, const std::string& node, const std::string& source);

// default.nix of a directory of modules: an attribute set from each node name to ./<node>.nix.
std::string render_nixos_index(const std::vector<std::string>& nodes);

}  // namespace wgf::plan
