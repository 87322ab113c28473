// systemd-networkd configuration of one node: a .netdev and a .network per WireGuard interface,
// written from the same desired state the reconciler applies (render_host), so what networkd sets
// up is what `wg-fleet apply` would. Pure: no I/O; the private key is named by its file, never
// read or written.
#pragma once

#include <string>
#include <vector>

#include "plan/render.hpp"

namespace wgf::plan {

struct NetworkdFile {
    std::string name;  // 50-wg-fleet-IFNAME.netdev or .network
    std::string content;
};

// The files of every interface of `desired`, in interface name order, .netdev before .network.
// `node` only names the node in the files' comments.
std::vector<NetworkdFile> render_networkd(const Desired& desired, const std::string& node);

}  // namespace wgf::plan
