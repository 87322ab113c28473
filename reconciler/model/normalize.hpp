// The canonical form of the prefix lists a HostState carries, so that a desired and a live state
// that mean the same to the kernel compare equal with ==. The renderer and every reader (UAPI,
// generic netlink, rtnetlink) build these lists only through the types below: each keeps its
// prefixes sorted and each once from construction on, and offers no way to break that.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <vector>

#include "model/net.hpp"

namespace wgf::model {

// Whether a set stores networks (host bits cleared, as WireGuard keeps allowed IPs: 10.0.0.7/16
// is 10.0.0.0/16) or addresses (an interface's 10.0.0.7/16 is that address on that subnet).
enum class HostBits { clear, keep };

template <HostBits kHostBits>
class BasicPrefixSet {
public:
    using value_type = Prefix;
    using const_iterator = std::vector<Prefix>::const_iterator;

    BasicPrefixSet() = default;
    BasicPrefixSet(std::initializer_list<Prefix> prefixes) : BasicPrefixSet(std::vector<Prefix>(prefixes)) {}
    explicit BasicPrefixSet(std::vector<Prefix> prefixes);
    template <class It>
    BasicPrefixSet(It first, It last) : BasicPrefixSet(std::vector<Prefix>(first, last)) {}

    // Adds p in canonical form; false if it was there. Appending in order costs O(1).
    bool insert(const Prefix& p);
    // Adds many with one sort instead of one shift per prefix.
    void insert(std::vector<Prefix> prefixes);
    bool erase(const Prefix& p);
    bool contains(const Prefix& p) const;
    void clear() { v_.clear(); }

    const_iterator begin() const { return v_.begin(); }
    const_iterator end() const { return v_.end(); }
    std::size_t size() const { return v_.size(); }
    bool empty() const { return v_.empty(); }
    const Prefix& operator[](std::size_t i) const { return v_[i]; }
    const std::vector<Prefix>& prefixes() const { return v_; }

    auto operator<=>(const BasicPrefixSet&) const = default;

private:
    static Prefix canonical(const Prefix& p) { return kHostBits == HostBits::clear ? p.masked() : p; }

    std::vector<Prefix> v_;
};

// A peer's allowed IPs, and anything else that names networks.
using PrefixSet = BasicPrefixSet<HostBits::clear>;
// An interface's addresses.
using AddressSet = BasicPrefixSet<HostBits::keep>;

extern template class BasicPrefixSet<HostBits::clear>;
extern template class BasicPrefixSet<HostBits::keep>;

}  // namespace wgf::model
