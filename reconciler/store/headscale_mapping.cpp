#include "store/headscale_mapping.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/fd.hpp"
#include "store/store.hpp"

namespace wgf::serve::headscale {
namespace {

using json = nlohmann::json;
using model::IpAddr;

// Mapping files are small: a node is one short line of JSON.
constexpr size_t kMaxFile = 64u << 20;

// A string member, or "" when it is absent or null; false when it is something else.
bool opt_string(const json& obj, const char* key, std::string& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    out = it->get<std::string>();
    return true;
}

}  // namespace

bool valid_node_id(std::string_view id) {
    return !id.empty() && id.size() <= 40 &&
           std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
}

std::string mapping_dir(const std::string& state_dir) { return state_dir + "/headscale"; }

std::string mapping_path(const std::string& state_dir, const std::string& fleet) { return mapping_dir(state_dir) + "/" + fleet + ".json"; }

std::string mapping_to_json(const Mapping& m) {
    json nodes = json::object();
    for (const auto& [id, e] : m.nodes) {
        json n = {{"name", e.name}, {"address", e.address.str()}, {"public_key", e.public_key.base64()}};
        if (e.missing_since) n["missing_since"] = *e.missing_since;
        nodes[id] = std::move(n);
    }
    json j = {{"format", 1}, {"last_ip", m.last_ip ? json(m.last_ip->str()) : json(nullptr)}, {"nodes", std::move(nodes)}};
    return j.dump(2) + "\n";
}

std::optional<Mapping> parse_mapping(std::string_view text, std::string& error) {
    auto invalid = [&](std::string why) -> std::optional<Mapping> {
        error = std::move(why);
        return std::nullopt;
    };
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return invalid("not a JSON object");
    auto fmt_v = j.find("format");
    if (fmt_v == j.end() || *fmt_v != 1) return invalid("unknown format (expected \"format\": 1)");
    Mapping m;
    if (auto li = j.find("last_ip"); li != j.end() && !li->is_null()) {
        if (!li->is_string() || !(m.last_ip = IpAddr::parse(li->get<std::string>())))
            return invalid(fmt::format("last_ip is not an address: {}", li->dump()));
    }
    auto nodes = j.find("nodes");
    if (nodes == j.end() || !nodes->is_object()) return invalid("no \"nodes\" object");
    std::set<IpAddr> seen;
    for (const auto& item : nodes->items()) {
        const std::string& id = item.key();
        const json& n = item.value();
        auto bad = [&](std::string_view what) { return invalid(fmt::format("node {}: {}", id, what)); };
        if (!valid_node_id(id)) return bad("not a valid node id");
        if (!n.is_object()) return bad("not an object");
        Entry e;
        if (!opt_string(n, "name", e.name) || !model::valid_node_name(e.name)) return bad("name is not a node name");
        std::string addr, key;
        if (!opt_string(n, "address", addr)) return bad("address is not a string");
        auto a = IpAddr::parse(addr);
        if (!a) return bad(fmt::format("address '{}' is not an address", addr));
        if (!seen.insert(*a).second) return bad(fmt::format("address {} is held by another node", addr));
        e.address = *a;
        if (!opt_string(n, "public_key", key)) return bad("public_key is not a string");
        auto k = model::Key::from_base64(key);
        if (!k) return bad("public_key is not a WireGuard key");
        e.public_key = *k;
        if (auto ms = n.find("missing_since"); ms != n.end() && !ms->is_null()) {
            if (!ms->is_number_integer()) return bad("missing_since is not a number");
            e.missing_since = ms->get<int64_t>();
        }
        m.nodes.emplace(id, std::move(e));
    }
    return m;
}

std::optional<Mapping> read_mapping(const std::string& path) {
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw StoreError(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
    }
    struct stat st {};
    if (fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw StoreError(fmt::format("{}: not a regular file", path));
    if (static_cast<size_t>(st.st_size) > kMaxFile) throw StoreError(fmt::format("{}: larger than {} MiB", path, kMaxFile >> 20));
    std::string text;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw StoreError(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    std::string error;
    auto m = parse_mapping(text, error);
    if (!m) throw StoreError(fmt::format("{}: not a Headscale mapping: {}", path, error));
    return m;
}

}  // namespace wgf::serve::headscale
