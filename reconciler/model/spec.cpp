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

}  // namespace wgf::model
