#include "serve/agent_http.hpp"

#include <sodium.h>

#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/diag.hpp"
#include "model/net.hpp"
#include "serve/api.hpp"

namespace wgf::serve {
namespace {

using nlohmann::json;
using Hash = std::array<unsigned char, 32>;

// A hash of fixed length: comparing two of them takes the same time whatever the lengths and
// contents of the texts hashed, so neither the token's length nor its prefix leaks.
Hash hash_of(std::string_view text) {
    Hash h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(text.data()), text.size(), nullptr, 0);
    return h;
}

bool loopback(const std::string& peer) {
    // IPv4-mapped IPv6 counts as IPv4 (a dual-stack listener's view of 127.0.0.1).
    auto a = client_address(peer, std::nullopt, {});
    if (!a) return false;
    if (a->is_v4()) return a->bytes[0] == 127;
    return *a == *model::IpAddr::parse("::1");
}

Response json_response(int status, const json& body) {
    return Response{.status = status, .content_type = "application/json", .body = body.dump(), .headers = {}};
}

Response method_not_allowed(const char* allow) {
    Response resp = error_response(405, "method not allowed");
    resp.headers.emplace_back("Allow", allow);
    return resp;
}

const char* id_key(bool routes) { return routes ? "route_id" : "forward_id"; }
const char* kind(bool routes) { return routes ? "route" : "forward"; }

}  // namespace

AgentHttp::AgentHttp(EdgeAgent& agent, std::optional<std::string> token, std::function<void()> changed, Log info, Log warn)
    : agent_(agent), changed_(std::move(changed)), info_(std::move(info)), warn_(std::move(warn)) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    if (token) {
        token_hash_ = hash_of(*token);
        sodium_memzero(token->data(), token->size());
    }
}

bool AgentHttp::owns(const std::vector<std::string>& seg) {
    return seg.size() >= 2 && ((seg[0] == "http" && seg[1] == "routes") || (seg[0] == "tcp" && seg[1] == "forwards"));
}

Part AgentHttp::part() {
    return Part{.name = "edge agent", .owns = owns, .handle = [this](const Request& r) { return handle(r); }};
}

std::optional<Response> AgentHttp::refuse_access(const Request& r) const {
    if (token_hash_) {
        if (r.agent_token && sodium_memcmp(hash_of(*r.agent_token).data(), token_hash_->data(), token_hash_->size()) == 0)
            return std::nullopt;
        return error_response(401, "a valid X-Agent-Token header is required");
    }
    // No token: only a process on this machine may change what it forwards, and a reverse proxy
    // on loopback would make every client look local.
    if (loopback(r.peer) && !r.forwarded_for) return std::nullopt;
    return error_response(403, "without serve: agent_token_file: the edge agent API answers only local requests (loopback, no proxy)");
}

Response AgentHttp::handle(const Request& r) {
    auto seg = path_segments(r.path);
    if (!owns(seg) || seg.size() > 3) return error_response(404, "not found");
    const bool routes = seg[0] == "http";
    const bool get = r.method == "GET" || r.method == "HEAD";
    if (seg.size() == 2 && !get && r.method != "POST") return method_not_allowed("GET, HEAD, POST");
    if (seg.size() == 3 && r.method != "DELETE") return method_not_allowed("DELETE");
    if (auto refused = refuse_access(r)) return *refused;
    if (seg.size() == 3) return remove(routes, seg[2]);
    return get ? list(routes) : add(routes, r.body);
}

Response AgentHttp::list(bool routes) {
    auto now = agent_.entries();
    if (auto* e = std::get_if<std::string>(&now)) return outcome({.status = AgentResult::Status::error, .message = *e}, "list");
    const AgentEntries& entries = std::get<AgentEntries>(now);
    json by_id = json::object();
    if (routes)
        for (const auto& x : entries.routes) by_id[x.route_id] = json::parse(route_to_json(x));
    else
        for (const auto& x : entries.forwards) by_id[x.forward_id] = json::parse(forward_to_json(x));
    return json_response(200, json{{"ok", true}, {routes ? "routes" : "forwards", by_id}});
}

Response AgentHttp::add(bool routes, const std::string& body) {
    std::string id, what;
    AgentResult res;
    if (routes) {
        auto parsed = route_from_json(body);
        if (auto* e = std::get_if<std::string>(&parsed)) return error_response(422, *e);
        const auto& x = std::get<AgentRoute>(parsed);
        id = x.route_id;
        what = fmt::format("route {} ({} -> {})", config::quote(id), config::quote(x.hostname), config::quote(x.target_url));
        res = agent_.add_route(x);
    } else {
        auto parsed = forward_from_json(body);
        if (auto* e = std::get_if<std::string>(&parsed)) return error_response(422, *e);
        const auto& x = std::get<AgentForward>(parsed);
        id = x.forward_id;
        what = fmt::format("forward {} ({} {} -> {} port {})", config::quote(id), x.proto, x.public_port, config::quote(x.target_ip),
                           x.target_port);
        res = agent_.add_forward(x);
    }
    if (res.status != AgentResult::Status::ok) return outcome(res, "add " + what);
    info_(fmt::format("edge agent: {} {}", res.replaced ? "replaced" : "added", what));
    changed_();
    return json_response(200, json{{"ok", true}, {id_key(routes), id}, {"replaced", res.replaced}});
}

Response AgentHttp::remove(bool routes, const std::string& id) {
    AgentResult res = routes ? agent_.delete_route(id) : agent_.delete_forward(id);
    if (res.status != AgentResult::Status::ok) return outcome(res, fmt::format("delete {} {}", kind(routes), config::quote(id)));
    info_(fmt::format("edge agent: deleted {} {}", kind(routes), config::quote(id)));
    changed_();
    return json_response(200, json{{"ok", true}, {id_key(routes), id}, {"deleted", true}});
}

Response AgentHttp::outcome(const AgentResult& res, const std::string& what) {
    switch (res.status) {
        case AgentResult::Status::ok: break;
        case AgentResult::Status::invalid:
            info_(fmt::format("edge agent: refused to {}: the configuration would not load", what));
            return error_response(400, res.message);
        case AgentResult::Status::not_found: return error_response(404, res.message);
        case AgentResult::Status::error:
            warn_(fmt::format("edge agent: cannot {}: {}", what, res.message));
            return error_response(500, res.message);
    }
    return error_response(500, "internal error");
}

}  // namespace wgf::serve
