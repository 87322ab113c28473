#include "serve/headscale.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "plan/address_plan.hpp"

namespace wgf::serve::headscale {
namespace {

using json = nlohmann::json;
using backend::Error;
using model::IpAddr;
using model::Prefix;

Error invalid(std::string msg) { return Error{.code = EINVAL, .message = std::move(msg)}; }

// A field under either spelling grpc-gateway may use: camelCase by default, the proto's
// snake_case names when the server marshals with UseProtoNames (Headscale does).
const json* field(const json& obj, std::string_view camel, std::string_view snake = {}) {
    auto it = obj.find(camel);
    if (it != obj.end()) return &*it;
    if (!snake.empty()) {
        it = obj.find(snake);
        if (it != obj.end()) return &*it;
    }
    return nullptr;
}

// An optional string field; null counts as absent. False when present and not a string.
bool opt_string(const json& obj, std::string_view camel, std::string_view snake, std::string& out) {
    const json* v = field(obj, camel, snake);
    if (!v || v->is_null()) return true;
    if (!v->is_string()) return false;
    out = v->get<std::string>();
    return true;
}

// grpc-gateway writes uint64 ids as strings; other encoders write numbers.
std::optional<std::string> id_text(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return std::to_string(v.get<int64_t>());
    return std::nullopt;
}

backend::Result<Node> parse_node(const json& j, size_t index) {
    auto where = [&](std::string_view what) { return invalid(fmt::format("Headscale response: nodes[{}]: {}", index, what)); };
    if (!j.is_object()) return where(fmt::format("expected an object, got {}", j.type_name()));
    Node n;
    const json* id = field(j, "id");
    if (!id) return where("no id");
    auto idt = id_text(*id);
    if (!idt || idt->empty()) return where(fmt::format("id is not a string or a non-negative integer: {}", id->dump()));
    n.id = *idt;
    if (!opt_string(j, "name", {}, n.name)) return where("name is not a string");
    if (!opt_string(j, "givenName", "given_name", n.given_name)) return where("givenName is not a string");
    if (!opt_string(j, "lastSeen", "last_seen", n.last_seen)) return where("lastSeen is not a string");
    if (const json* ips = field(j, "ipAddresses", "ip_addresses"); ips && !ips->is_null()) {
        if (!ips->is_array()) return where("ipAddresses is not a list");
        for (const auto& a : *ips) {
            if (!a.is_string()) return where("ipAddresses holds a non-string");
            n.ip_addresses.push_back(a.get<std::string>());
        }
    }
    if (const json* u = field(j, "user"); u && u->is_object()) {
        if (!opt_string(*u, "name", {}, n.user)) return where("user.name is not a string");
    }
    if (const json* o = field(j, "online"); o && !o->is_null()) {
        if (!o->is_boolean()) return where("online is not true or false");
        n.online = o->get<bool>();
    }
    return n;
}

// Offsets of addresses from the pool's network, in its low 64 bits: pools larger than 2^64
// addresses use their first 2^64.
struct Range {
    uint64_t first = 2;  // the network and (by custom) the server's address before it
    uint64_t last = 0;
};

unsigned host_bits(const Prefix& pool) { return pool.addr.bits() - pool.len; }

Range range_of(const Prefix& pool) {
    unsigned hb = host_bits(pool);
    if (pool.addr.is_v4()) return Range{.first = 2, .last = (uint64_t{1} << hb) - 2};  // before broadcast
    return Range{.first = 2, .last = hb >= 64 ? std::numeric_limits<uint64_t>::max() : (uint64_t{1} << hb) - 1};
}

uint64_t low64(const IpAddr& a) {
    uint64_t v = 0;
    for (size_t i = 8; i < 16; ++i) v = (v << 8) | a.bytes[i];
    return v;
}

IpAddr at(const Prefix& pool, uint64_t off) {
    if (pool.addr.is_v4()) return IpAddr::v4(pool.addr.v4_value() + static_cast<uint32_t>(off));
    IpAddr a = pool.addr;
    uint64_t v = low64(a) + off;
    for (size_t i = 0; i < 8; ++i) a.bytes[15 - i] = static_cast<uint8_t>(v >> (8 * i));
    return a;
}

std::optional<uint64_t> offset_of(const Prefix& pool, const IpAddr& a) {
    if (a.family != pool.addr.family || !pool.contains(a)) return std::nullopt;
    if (a.is_v4()) return a.v4_value() - pool.addr.v4_value();
    if (!std::equal(a.bytes.begin(), a.bytes.begin() + 8, pool.addr.bytes.begin())) return std::nullopt;
    return low64(a) - low64(pool.addr);
}

// The member name of a node: its Headscale name when that is a valid node name, else node-<id>.
std::string base_name(const Node& n) {
    if (model::valid_node_name(n.given_name)) return n.given_name;
    if (model::valid_node_name(n.name)) return n.name;
    return "node-" + n.id;
}

// A name no other member has: the node's own, else numbered with its id.
std::string unique_name(const std::string& base, const std::string& id, const std::set<std::string>& used) {
    if (!used.count(base)) return base;
    std::string suffix = "--" + id;
    std::string numbered = base.substr(0, 63 - std::min<size_t>(63, suffix.size())) + suffix;
    if (model::valid_node_name(numbered) && !used.count(numbered)) return numbered;
    return "node-" + id;
}

json ip_or_null(const std::optional<IpAddr>& a) { return a ? json(a->str()) : json(nullptr); }

}  // namespace

backend::Result<std::vector<Node>> parse_nodes(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return invalid("Headscale response: not valid JSON");
    if (!j.is_object()) return invalid(fmt::format("Headscale response: expected an object with a \"nodes\" list, got {}", j.type_name()));
    std::vector<Node> out;
    const json* nodes = field(j, "nodes");
    // protojson leaves out an empty list; anything else without "nodes" is not a node list.
    if (!nodes && j.empty()) return out;
    if (!nodes || !nodes->is_array()) return invalid("Headscale response: expected an object with a \"nodes\" list");
    std::set<std::string> seen;
    for (size_t i = 0; i < nodes->size(); ++i) {
        auto n = parse_node((*nodes)[i], i);
        if (!n) return n.error();
        if (!seen.insert(n->id).second) return invalid(fmt::format("Headscale response: node id {} is listed twice", n->id));
        out.push_back(std::move(*n));
    }
    return out;
}

IpAddr pool_start(const Prefix& pool) { return at(pool, range_of(pool).first); }

std::optional<IpAddr> next_free(const Prefix& pool, const std::optional<IpAddr>& from, const std::set<IpAddr>& held,
                                const std::set<IpAddr>& reserved) {
    const Range r = range_of(pool);
    if (r.last < r.first) return std::nullopt;
    uint64_t off = r.first;
    if (from)
        if (auto o = offset_of(pool, *from); o && *o >= r.first && *o < r.last) off = *o + 1;
    // Of held.size() + reserved.size() + 1 addresses at least one is free, so a huge pool is not walked.
    const uint64_t span = r.last - r.first;  // one less than the number of addresses
    const uint64_t tries = std::min<uint64_t>(span, held.size() + reserved.size()) + 1;
    for (uint64_t i = 0; i < tries; ++i) {
        IpAddr a = at(pool, off);
        if (!held.count(a) && !reserved.count(a)) return a;
        off = off == r.last ? r.first : off + 1;
    }
    return std::nullopt;
}

SyncResult sync(const Mapping& current, const std::vector<Node>& nodes, const SyncInput& in, const KeySource& keys) {
    SyncResult r{.mapping = current, .added = {}, .removed = {}, .problems = {}};
    Mapping& m = r.mapping;
    std::map<std::string, const Node*> listed;
    for (const auto& n : nodes) {
        if (valid_node_id(n.id)) listed.emplace(n.id, &n);
        else r.problems.push_back(fmt::format("Headscale node id '{}' left out: ids are letters, digits, '-' and '_', at most 40", n.id));
    }
    // Missing nodes first: what a removed one frees is free for the nodes that follow.
    for (auto it = m.nodes.begin(); it != m.nodes.end();) {
        Entry& e = it->second;
        if (listed.count(it->first)) {
            e.missing_since.reset();
            ++it;
            continue;
        }
        if (!e.missing_since) e.missing_since = in.now;
        if (in.now - *e.missing_since >= static_cast<int64_t>(in.grace)) {
            r.removed.push_back(it->first);
            it = m.nodes.erase(it);
        } else {
            ++it;
        }
    }
    std::set<std::string> used = in.taken_names;
    std::set<IpAddr> held;
    for (const auto& [id, e] : m.nodes) {
        held.insert(e.address);
        if (!listed.count(id)) used.insert(e.name);  // a missing node keeps its name
    }
    for (const auto& [id, n] : listed) {
        std::string name = unique_name(base_name(*n), id, used);
        if (auto e = m.nodes.find(id); e != m.nodes.end()) {
            e->second.name = name;
            used.insert(name);
            continue;
        }
        auto addr = next_free(in.pool, m.last_ip, held, in.reserved);
        if (!addr) {
            r.problems.push_back(fmt::format("Headscale node {} ({}) left out: no free address in the pool {}", id, name, in.pool.str()));
            continue;
        }
        auto key = keys(id);
        if (!key) {
            r.problems.push_back(fmt::format("Headscale node {} ({}) left out: {}", id, name, key.error().message));
            continue;
        }
        m.nodes.emplace(id, Entry{.name = name, .address = *addr, .public_key = *key, .missing_since = std::nullopt});
        held.insert(*addr);
        used.insert(name);
        m.last_ip = *addr;
        r.added.push_back(id);
    }
    return r;
}

backend::Result<Mapping> mapping_from_json(std::string_view text) {
    std::string error;
    auto m = parse_mapping(text, error);
    if (!m) return invalid(std::move(error));
    return std::move(*m);
}

backend::Result<Mapping> import_sync_state(std::string_view text, const SyncInput& in, const Mapping& current, const KeySource& keys) {
    const Prefix& pool = in.pool;
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return invalid("sync state: not valid JSON");
    if (!j.is_object()) return invalid("sync state: expected an object with \"processed_nodes\"");
    const json* processed = field(j, "processed_nodes");
    if (!processed || !processed->is_object()) return invalid("sync state: no \"processed_nodes\" object of node id -> address");
    std::map<std::string, IpAddr> imported;
    std::map<IpAddr, std::string> by_addr;
    for (const auto& item : processed->items()) {
        const std::string& key = item.key();
        const json& v = item.value();
        // The service named its entries "node_<id>" or by the bare id.
        std::string id = key.starts_with("node_") && valid_node_id(key.substr(5)) ? key.substr(5) : key;
        auto bad = [&](std::string_view what) { return invalid(fmt::format("sync state: processed_nodes.{}: {}", key, what)); };
        if (!valid_node_id(id)) return bad("not a node id (letters, digits, '-' and '_', at most 40)");
        if (!v.is_string()) return bad(fmt::format("expected an address string, got {}", v.dump()));
        auto a = IpAddr::parse(v.get<std::string>());
        if (!a) return bad(fmt::format("'{}' is not an address", v.get<std::string>()));
        const auto off = offset_of(pool, *a);
        if (!off) return bad(fmt::format("{} is outside the pool {} (set headscale.pool to the service's subnet)", a->str(), pool.str()));
        if (*off < range_of(pool).first || *off > range_of(pool).last)
            return bad(fmt::format("{} is not an address the pool {} gives nodes (its network, first and broadcast addresses are not)",
                                   a->str(), pool.str()));
        if (in.reserved.count(*a)) return bad(fmt::format("{} is an address the fleet itself holds (its server or a member)", a->str()));
        if (auto [it, fresh] = by_addr.emplace(*a, id); !fresh)
            return bad(fmt::format("{} is also node {}'s address", a->str(), it->second));
        if (!imported.emplace(id, *a).second) return bad(fmt::format("node {} is listed twice", id));
    }
    std::optional<IpAddr> last_ip;
    if (const json* li = field(j, "last_ip"); li && !li->is_null()) {
        if (!li->is_string() || !(last_ip = IpAddr::parse(li->get<std::string>())))
            return invalid(fmt::format("sync state: last_ip is not an address: {}", li->dump()));
    } else if (!by_addr.empty()) {
        last_ip = by_addr.rbegin()->first;
    }
    Mapping m = current;
    for (const auto& [id, e] : m.nodes) {
        auto it = imported.find(id);
        if (it != imported.end() && it->second != e.address)
            return invalid(fmt::format("sync state: node {} has {} here but {} already", id, it->second.str(), e.address.str()));
        if (auto held = by_addr.find(e.address); held != by_addr.end() && held->second != id)
            return invalid(fmt::format("sync state: {} of node {} is already node {}'s address", e.address.str(), held->second, id));
    }
    for (const auto& [id, a] : imported) {
        if (m.nodes.count(id)) continue;
        auto key = keys(id);
        if (!key) return key.error();
        m.nodes.emplace(id, Entry{.name = "node-" + id, .address = a, .public_key = *key, .missing_since = std::nullopt});
    }
    if (last_ip) m.last_ip = last_ip;
    return m;
}

SyncInput sync_input(const model::Config& cfg, const std::string& fleet, int64_t now) {
    const model::Fleet& f = cfg.fleets.at(fleet);
    SyncInput in{.pool = {}, .reserved = {}, .taken_names = {}, .grace = 600, .now = now};
    if (f.headscale) {
        in.grace = f.headscale->grace;
        if (f.headscale->pool) in.pool = *f.headscale->pool;
        else if (f.subnet) in.pool = *f.subnet;
    }
    for (const auto& [name, addrs] : plan::plan_fleet(fleet, f).nodes) {
        in.taken_names.insert(name);
        for (const auto& a : addrs.addresses) in.reserved.insert(a.addr);
    }
    if (f.ip6) in.reserved.insert(*f.ip6);
    in.taken_names.insert(f.server);
    return in;
}

ServerSide server_side(const model::Config& cfg, const std::string& fleet, const model::Key& server_public_key) {
    const model::Fleet& f = cfg.fleets.at(fleet);
    ServerSide s{.public_key = server_public_key, .endpoint = std::nullopt, .allowed_ips = {}, .keepalive = f.keepalive, .mtu = f.mtu};
    if (f.external_ip) s.endpoint = model::Endpoint{.host = *f.external_ip, .port = f.port};
    if (f.subnet) s.allowed_ips.push_back(*f.subnet);
    if (f.ipv4) s.allowed_ips.push_back(*f.ipv4);
    if (f.headscale && f.headscale->pool &&
        std::none_of(s.allowed_ips.begin(), s.allowed_ips.end(), [&](const Prefix& p) { return p.contains(f.headscale->pool->addr); }))
        s.allowed_ips.push_back(*f.headscale->pool);
    return s;
}

std::vector<Member> members(const std::string& fleet, const Mapping& m) {
    std::vector<Member> out;
    out.reserve(m.nodes.size());
    for (const auto& [id, e] : m.nodes)
        out.push_back(Member{.fleet = fleet, .name = e.name, .node_id = id, .public_key = e.public_key, .address = e.address});
    return out;
}

std::string members_json(const std::vector<Member>& all) {
    json out = json::array();
    for (const auto& m : all)
        out.push_back({{"fleet", m.fleet},
                       {"name", m.name},
                       {"node_id", m.node_id},
                       {"public_key", m.public_key.base64()},
                       {"address", m.address.str()}});
    return out.dump(2) + "\n";
}

std::string health_json(const Health& h) {
    json j = {{"status", "ok"},
              {"nodes", h.nodes},
              {"last_success", h.last_success ? json(*h.last_success) : json(nullptr)},
              {"last_error", h.last_error.empty() ? json(nullptr) : json(h.last_error)}};
    return j.dump() + "\n";
}

std::string peers_json(const Mapping& m) {
    json processed = json::object();
    for (const auto& [id, e] : m.nodes) processed[id] = e.address.str();
    json j = {{"processed_nodes", std::move(processed)}, {"last_ip", ip_or_null(m.last_ip)}};
    return j.dump() + "\n";
}

std::optional<std::string> peer_config(const Mapping& m, const std::string& node_id, const model::SecretKey& private_key,
                                       const ServerSide& server) {
    auto it = m.nodes.find(node_id);
    if (it == m.nodes.end()) return std::nullopt;
    const Entry& e = it->second;
    std::string out = fmt::format("# wg-quick config of Headscale node {} ({}), rendered by wg-fleet.\n", node_id, e.name);
    out += "[Interface]\n";
    out += "PrivateKey = " + private_key.base64_for_storage() + "\n";
    out += "Address = " + Prefix::host(e.address).str() + "\n";
    if (server.mtu) out += fmt::format("MTU = {}\n", *server.mtu);
    out += "\n[Peer]\n";
    out += "PublicKey = " + server.public_key.base64() + "\n";
    std::string allowed;
    for (const auto& p : server.allowed_ips) allowed += (allowed.empty() ? "" : ", ") + p.str();
    out += "AllowedIPs = " + allowed + "\n";
    if (server.endpoint) out += "Endpoint = " + server.endpoint->str() + "\n";
    if (server.keepalive) out += fmt::format("PersistentKeepalive = {}\n", server.keepalive);
    return out;
}

}  // namespace wgf::serve::headscale
