#include "inputs/rotation.hpp"

#include <dirent.h>

#include <algorithm>

#include <fmt/format.h>

#include "inputs/published_keys.hpp"
#include "plan/rotation.hpp"

namespace wgf::inputs {
namespace {

constexpr std::string_view kSuffix = ".next.pub";

backend::NextKeyFile read_one(const std::string& path, const std::string& node, const Secrets& secrets) {
    backend::NextKeyFile f{.node = node, .path = path, .key = std::nullopt, .switch_at = 0, .refused = {}};
    auto got = read_published_text(path, secrets, plan::kNextKeyMaxBytes, "a next key file is two lines: public_key: and switch_at:");
    if (got.missing) {
        f.refused = "it no longer exists";
        return f;
    }
    if (!got.refused.empty()) {
        f.refused = std::move(got.refused);
        return f;
    }
    auto parsed = plan::parse_next_key(got.text);
    got.wipe();
    if (!parsed.next) {
        f.refused = std::move(parsed.error);
        return f;
    }
    if (is_private_key(secrets, parsed.next->key)) {
        f.refused = "it holds one of this node's private keys";
        return f;
    }
    f.key = parsed.next->key;
    f.switch_at = parsed.next->switch_at;
    return f;
}

}  // namespace

backend::NextKeyFile read_next_key_file(const std::string& path, const std::string& node, const model::Config& cfg) {
    return read_one(path, node, load_secrets(cfg));
}

std::vector<backend::NextKeyFile> FileNextKeys::read(const std::string& keys_dir, const std::string& fleet) {
    std::vector<backend::NextKeyFile> out;
    const std::string dir = keys_dir + "/" + fleet;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    std::vector<std::string> nodes;
    while (const dirent* e = readdir(d)) {
        std::string_view name(e->d_name);
        if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix) || name.front() == '.') continue;
        nodes.emplace_back(name.substr(0, name.size() - kSuffix.size()));
    }
    closedir(d);
    if (nodes.empty()) return out;
    std::sort(nodes.begin(), nodes.end());
    const Secrets secrets = load_secrets(cfg_);
    for (const auto& n : nodes) {
        auto f = read_one(plan::next_key_path(keys_dir, fleet, n), n, secrets);
        // Removed between the listing and the read: the rotation completed, nothing to report.
        if (!f.key && f.refused == "it no longer exists") continue;
        out.push_back(std::move(f));
    }
    return out;
}

}  // namespace wgf::inputs
