// DNS for endpoints: names are resolved in a phase of their own on every run and tick.
#pragma once

#include <optional>
#include <string>

#include "model/net.hpp"

namespace wgf::backend {

class Resolver {
public:
    virtual ~Resolver() = default;
    // An address for host (an address literal is returned as it is); nullopt when it does not
    // resolve.
    virtual std::optional<model::IpAddr> resolve(const std::string& host) = 0;
};

}  // namespace wgf::backend
