// Endpoint names through the system's resolver (getaddrinfo: /etc/hosts, DNS, as nsswitch.conf
// says); the first address it returns is used.
#pragma once

#include "backend/resolver.hpp"

namespace wgf::system {

class SystemResolver : public backend::Resolver {
public:
    std::optional<model::IpAddr> resolve(const std::string& host) override;
};

}  // namespace wgf::system
