#include "model/host_state.hpp"

namespace wgf::model {

const InterfaceLabels& Labels::of(const std::string& ifname) const {
    static const InterfaceLabels kNone;
    auto it = interfaces.find(ifname);
    return it == interfaces.end() ? kNone : it->second;
}

const std::string& Labels::peer_name(const std::string& ifname, const Key& key) const {
    static const std::string kNone;
    const auto& names = of(ifname).peer_names;
    auto it = names.find(key);
    return it == names.end() ? kNone : it->second;
}

}  // namespace wgf::model
