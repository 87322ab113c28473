// Addresses, prefixes, their texts and public keys for tests, from literals the test knows to be valid.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.hpp"

namespace wgf::test {

inline model::IpAddr ip(std::string_view s) { return model::IpAddr::parse(s).value(); }
inline model::Prefix prefix(std::string_view s) { return model::Prefix::parse(s).value(); }

// Each element's text (addresses, prefixes: anything with str()).
template <class Prefixes>
std::vector<std::string> strs(const Prefixes& v) {
    std::vector<std::string> out;
    for (const auto& p : v) out.push_back(p.str());
    return out;
}

// A public key distinct for each (n, m): not a real curve point, which nothing here needs.
inline model::Key key(uint8_t n, uint8_t m = 0) {
    model::Key k;
    k.bytes[0] = n;
    k.bytes[1] = m;
    k.bytes[31] = 0x40;
    return k;
}

}  // namespace wgf::test
