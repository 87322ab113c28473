#include "plan/sysctls.hpp"

#include <string_view>

namespace wgf::plan {

std::string accept_ra_key(const std::string& ifname) { return std::string(kIpv6Conf) + "/" + ifname + "/accept_ra"; }

std::string conf_interface(const std::string& key) {
    for (std::string_view prefix : {"net/ipv4/conf/", "net/ipv6/conf/"}) {
        if (key.compare(0, prefix.size(), prefix) != 0) continue;
        auto slash = key.find('/', prefix.size());
        if (slash == std::string::npos || slash == prefix.size()) return {};
        return key.substr(prefix.size(), slash - prefix.size());
    }
    return {};
}

bool is_accept_ra_key(const std::string& key) {
    std::string ifname = conf_interface(key);
    return !ifname.empty() && key == accept_ra_key(ifname);
}

bool is_managed_sysctl(const std::string& key, const std::string& value) {
    if (value.empty() || value.size() > 3 || value.find_first_not_of("0123456789") != std::string::npos) return false;
    if (key == kIpv6Forwarding || key == "net/ipv4/ip_forward") return true;
    const std::string ifname = conf_interface(key);
    if (ifname.empty() || !(model::valid_ifname(ifname) || ifname == "all" || ifname == "default")) return false;
    return key == accept_ra_key(ifname) || key == "net/ipv4/conf/" + ifname + "/promote_secondaries";
}

void complete_sysctls(model::HostState& desired, const model::HostState& live, const Ownership& owned) {
    auto find = [](const auto& map, const std::string& k) -> decltype(&map.begin()->second) {
        auto it = map.find(k);
        return it == map.end() ? nullptr : &it->second;
    };
    const std::string* want = find(desired.sysctls, kIpv6Forwarding);
    const std::string* now = find(live.sysctls, kIpv6Forwarding);
    const OwnedSysctl* ours = find(owned.sysctls, kIpv6Forwarding);
    const bool wanted = want && *want == "1";
    // wg-fleet turns forwarding on (or keeps on what it turned on). Forwarding that someone else
    // turned on is theirs, with whatever accept_ra they chose.
    const bool we_forward = wanted && now && (*now != "1" || ours);
    // Forwarding stays on after this plan without wg-fleet needing it: the diff restores only a
    // forwarding that is still the value wg-fleet set.
    const bool others_forward = !wanted && now && *now == "1" && !(ours && ours->value == *now);
    if (!we_forward && !others_forward) return;
    for (const auto& [key, value] : live.sysctls) {
        if (!is_accept_ra_key(key)) continue;
        const std::string ifname = conf_interface(key);
        if (ifname == "all" || desired.interfaces.count(ifname) || owned.interfaces.count(ifname)) continue;
        const OwnedSysctl* raised = find(owned.sysctls, key);
        // An accept_ra wg-fleet raised stays raised while forwarding is on, unless someone
        // changed it since (then it is theirs).
        if (raised && raised->value == value) desired.sysctls.emplace(key, value);
        else if (we_forward && value == "1") desired.sysctls.emplace(key, "2");
    }
}

std::map<std::string, OwnedSysctl> owned_sysctls_after(const model::HostState& desired, const model::HostState& live,
                                                       const Ownership& before) {
    std::map<std::string, OwnedSysctl> out;
    for (const auto& [key, value] : desired.sysctls) {
        if (auto it = before.sysctls.find(key); it != before.sysctls.end()) {
            out.emplace(key, OwnedSysctl{it->second.original, value});
        } else if (auto l = live.sysctls.find(key); l != live.sysctls.end() && l->second != value) {
            out.emplace(key, OwnedSysctl{l->second, value});
        }
    }
    return out;
}

}  // namespace wgf::plan
