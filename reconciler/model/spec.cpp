#include "model/spec.hpp"

namespace wgf::model {

const char* to_string(Topology t) { return t == Topology::hub ? "hub" : "mesh"; }

const char* to_string(Role r) {
    switch (r) {
        case Role::controller: return "controller";
        case Role::peer: return "peer";
        case Role::server: return "server";
    }
    return "?";
}

const char* to_string(Proto p) { return p == Proto::tcp ? "tcp" : "udp"; }

const std::string* exit_node_of(const Fleet& f, const Member& peer) {
    const std::optional<std::string>& e = peer.exit_node ? peer.exit_node : f.exit_node;
    return e && !e->empty() ? &*e : nullptr;
}

}  // namespace wgf::model
