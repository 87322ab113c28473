#include "model/normalize.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace wgf::model {

template <HostBits kHostBits>
BasicPrefixSet<kHostBits>::BasicPrefixSet(std::vector<Prefix> prefixes) : v_(std::move(prefixes)) {
    for (auto& p : v_) p = canonical(p);
    std::sort(v_.begin(), v_.end());
    v_.erase(std::unique(v_.begin(), v_.end()), v_.end());
}

template <HostBits kHostBits>
bool BasicPrefixSet<kHostBits>::insert(const Prefix& p) {
    const Prefix c = canonical(p);
    if (v_.empty() || v_.back() < c) {
        v_.push_back(c);
        return true;
    }
    auto it = std::lower_bound(v_.begin(), v_.end(), c);
    if (*it == c) return false;
    v_.insert(it, c);
    return true;
}

template <HostBits kHostBits>
void BasicPrefixSet<kHostBits>::insert(std::vector<Prefix> prefixes) {
    BasicPrefixSet more(std::move(prefixes));
    const auto middle = static_cast<std::ptrdiff_t>(v_.size());
    v_.insert(v_.end(), more.v_.begin(), more.v_.end());
    std::inplace_merge(v_.begin(), v_.begin() + middle, v_.end());
    v_.erase(std::unique(v_.begin(), v_.end()), v_.end());
}

template <HostBits kHostBits>
bool BasicPrefixSet<kHostBits>::erase(const Prefix& p) {
    const Prefix c = canonical(p);
    auto it = std::lower_bound(v_.begin(), v_.end(), c);
    if (it == v_.end() || *it != c) return false;
    v_.erase(it);
    return true;
}

template <HostBits kHostBits>
bool BasicPrefixSet<kHostBits>::contains(const Prefix& p) const {
    return std::binary_search(v_.begin(), v_.end(), canonical(p));
}

template class BasicPrefixSet<HostBits::clear>;
template class BasicPrefixSet<HostBits::keep>;

}  // namespace wgf::model
