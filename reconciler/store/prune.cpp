#include "store/prune.hpp"

namespace wgf::serve {

int64_t last_alive(const Client& c, int64_t last_handshake) { return last_handshake > 0 ? last_handshake : c.last_seen; }

std::vector<model::Key> clients_to_prune(const std::vector<Client>& clients, const std::map<model::Key, int64_t>& handshakes, int64_t now,
                                         uint64_t timeout) {
    std::vector<model::Key> out;
    for (const auto& c : clients) {
        auto h = handshakes.find(c.public_key);
        int64_t alive = last_alive(c, h == handshakes.end() ? 0 : h->second);
        if (now - alive > static_cast<int64_t>(timeout)) out.push_back(c.public_key);
    }
    return out;
}

}  // namespace wgf::serve
