#include "system/resolver.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

namespace wgf::system {

std::optional<model::IpAddr> SystemResolver::resolve(const std::string& host) {
    if (auto a = model::IpAddr::parse(host)) return a;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return std::nullopt;
    std::optional<model::IpAddr> out;
    for (addrinfo* ai = res; ai && !out; ai = ai->ai_next) {
        model::IpAddr a;
        if (ai->ai_family == AF_INET) {
            a.family = 4;
            std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
            out = a;
        } else if (ai->ai_family == AF_INET6) {
            a.family = 6;
            std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
            out = a;
        }
    }
    freeaddrinfo(res);
    return out;
}

}  // namespace wgf::system
