#include "apply/keys.hpp"

#include "plan/render.hpp"

namespace wgf::apply {

backend::Result<model::SecretKey> ensure_node_key(KeyStore& keys, const model::Config& cfg, const std::string& fleet, bool* generated) {
    std::string path = plan::private_key_path(cfg, fleet);
    auto existing = keys.load(path);
    if (!existing) return existing.error();
    *generated = !existing->has_value();
    if (existing->has_value()) return **existing;
    return keys.load_or_generate(path);
}

}  // namespace wgf::apply
