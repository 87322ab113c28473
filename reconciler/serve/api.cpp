#include "serve/api.hpp"

#include <sodium.h>

#include <algorithm>
#include <ctime>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "plan/health.hpp"
#include "serve/router.hpp"

namespace wgf::serve {
namespace {

using nlohmann::json;

Response json_response(int status, const json& body) {
    return Response{.status = status, .content_type = "application/json", .body = body.dump(), .headers = {}};
}

Response error(int status, const std::string& detail) { return error_response(status, detail); }

std::optional<model::IpAddr> unmapped(const std::string& text) {
    auto a = model::IpAddr::parse(text);
    if (!a || !a->is_v6()) return a;
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(prefix, prefix + 12, a->bytes.begin()))
        return model::IpAddr::v4((uint32_t{a->bytes[12]} << 24) | (uint32_t{a->bytes[13]} << 16) | (uint32_t{a->bytes[14]} << 8) |
                                 a->bytes[15]);
    return a;
}

bool trusted_proxy(const model::IpAddr& a, const std::vector<model::Prefix>& trusted) {
    for (const auto& p : trusted)
        if (p.contains(a)) return true;
    return false;
}

std::string trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

// The request's JSON object, or why not: an empty body is an empty object.
std::optional<json> body_object(const std::string& body, std::string& why) {
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) {
        why = "the body is not JSON";
        return std::nullopt;
    }
    if (!j.is_object()) {
        why = "the body must be a JSON object";
        return std::nullopt;
    }
    return j;
}

bool authorized(const View& v, const Request& r) {
    if (!v.token) return true;
    static const std::string kBearer = "Bearer ";
    if (!r.authorization || r.authorization->compare(0, kBearer.size(), kBearer) != 0) return false;
    std::string_view given = std::string_view(*r.authorization).substr(kBearer.size());
    if (given.size() != v.token->size()) return false;
    return sodium_memcmp(given.data(), v.token->data(), given.size()) == 0;
}

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// A JSON string as json::dump() writes it; the values here rarely need escaping.
void append_json_string(std::string& out, std::string_view v) {
    if (std::all_of(v.begin(), v.end(), [](char c) { return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20; })) {
        out += '"';
        out += v;
        out += '"';
    } else {
        out += json(std::string(v)).dump();
    }
}

std::string utc(int64_t t) {
    if (t <= 0) return "";
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string page(const std::string& title, const std::string& body) {
    return fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n"
        "<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;"
        "text-align:left}}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
        html_escape(title), body);
}

}  // namespace

std::optional<model::IpAddr> client_address(const std::string& peer, const std::optional<std::string>& forwarded_for,
                                            const std::vector<model::Prefix>& trusted) {
    auto a = unmapped(peer);
    if (!a || !forwarded_for || !trusted_proxy(*a, trusted)) return a;
    // Right to left: each hop appended the address it received from; the first one that is not
    // a trusted proxy is the client (anything left of it may be forged).
    std::string_view list = *forwarded_for;
    while (!list.empty()) {
        size_t comma = list.rfind(',');
        std::string item = trim_ows(comma == std::string_view::npos ? list : list.substr(comma + 1));
        list = comma == std::string_view::npos ? std::string_view() : list.substr(0, comma);
        auto hop = unmapped(item);
        if (!hop) return std::nullopt;
        if (!trusted_proxy(*hop, trusted)) return hop;
        a = hop;
    }
    return a;
}

std::string client_config(const ServedFleet& f, const model::IpAddr& address, const std::optional<std::string>& private_key) {
    std::string out = "[Interface]\n";
    if (private_key) out += "PrivateKey = " + *private_key + "\n";
    else out += "PrivateKey = <the private key of the public key you registered>\n";
    out += fmt::format("Address = {}/{}\n\n[Peer]\n", address.str(), f.subnet.len);
    out += "PublicKey = " + (f.server_key ? f.server_key->base64() : std::string()) + "\n";
    if (f.external_ip) {
        bool v6 = f.external_ip->find(':') != std::string::npos;
        out += fmt::format("Endpoint = {}{}{}:{}\n", v6 ? "[" : "", *f.external_ip, v6 ? "]" : "", f.port);
    }
    out += "AllowedIPs = " + f.subnet.masked().str() + "\n";
    if (f.keepalive) out += fmt::format("PersistentKeepalive = {}\n", f.keepalive);
    return out;
}

Api::Api(Store& store, std::function<void()> changed, std::function<int64_t()> now, Log info, Log warn)
    : store_(store), changed_(std::move(changed)), now_(std::move(now)), info_(std::move(info)), warn_(std::move(warn)) {}

void Api::set_view(View v) {
    auto p = std::make_shared<const View>(std::move(v));
    std::lock_guard lock(mu_);
    view_ = std::move(p);
}

std::shared_ptr<const View> Api::view() {
    std::lock_guard lock(mu_);
    return view_;
}

bool Api::owns(const std::vector<std::string>& seg) { return seg.empty() || seg[0] == "fleet"; }

bool Api::ready() {
    std::lock_guard lock(mu_);
    return view_ != nullptr;
}

Response Api::handle(const Request& r) {
    try {
        return dispatch(r);
    } catch (const std::exception& e) {
        // A failure of the store: its transaction rolled back, nothing changed.
        warn_(fmt::format("{} {}: {}", r.method, r.path, e.what()));
        return error(500, "internal error");
    }
}

Response Api::dispatch(const Request& r) {
    auto v = view();
    if (!v) return error(503, "starting: the first converge has not finished");
    auto seg = path_segments(r.path);
    auto method_not_allowed = [](const char* allow) {
        Response resp = error(405, "method not allowed");
        resp.headers.emplace_back("Allow", allow);
        return resp;
    };
    const bool get = r.method == "GET" || r.method == "HEAD";
    if (seg.empty()) return get ? index(*v, r) : method_not_allowed("GET, HEAD");
    if (seg[0] != "fleet" || seg.size() < 2 || seg.size() > 3) return error(404, "not found");
    const std::string& fleet = seg[1];
    if (seg.size() == 2) {
        if (!get) return method_not_allowed("GET, HEAD");
    } else if (seg[2] == "register" || seg[2] == "ping") {
        if (r.method != "POST") return method_not_allowed("POST");
    } else {
        return error(404, "not found");
    }
    if (!v->fleets.count(fleet)) return error(404, fmt::format("no fleet {} is served here", fleet));
    if (seg.size() == 2) return fleet_page(*v, fleet, r);
    if (!authorized(*v, r)) {
        Response resp = error(401, "a bearer token is required");
        resp.headers.emplace_back("WWW-Authenticate", "Bearer");
        return resp;
    }
    return seg[2] == "register" ? register_client(*v, fleet, r) : ping(*v, fleet, r);
}

Response Api::register_client(const View& v, const std::string& fleet, const Request& r) {
    const ServedFleet& f = v.fleets.at(fleet);
    std::string why;
    auto body = body_object(r.body, why);
    if (!body) return error(422, why);
    std::optional<model::Key> key;
    std::optional<model::SecretKey> secret;
    if (body->contains("public_key")) {
        const json& k = (*body)["public_key"];
        if (k.is_string()) key = model::Key::from_base64(k.get<std::string>());
        if (!key) return error(422, "public_key must be a WireGuard public key (base64 of 32 bytes)");
    } else {
        secret = model::SecretKey::generate();
        key = secret->public_key();
    }
    if (!f.server_key) return error(503, "the server's key is not known yet: try again once the device is up");
    auto src = client_address(r.peer, r.forwarded_for, v.trusted_proxies);
    const std::string source = src ? src->str() : r.peer;
    Registration reg = store_.register_client(fleet, Pool{.subnet = f.subnet, .server = f.server_ip, .reserved = &f.member_addresses}, *key,
                                              source, now_());
    if (!reg.client) {
        warn_(fmt::format("register in fleet {} from {}: no free address left in {}", fleet, source, f.subnet.str()));
        return error(503, fmt::format("no free address left in {}", f.subnet.str()));
    }
    if (!reg.existing) {
        info_(fmt::format("registered {} in fleet {} at {} (from {})", key->short_str(), fleet, reg.client->address.str(), source));
        changed_();
    }
    std::optional<std::string> priv;
    if (secret) priv = secret->base64_for_storage();
    json out{{"status", "success"},
             {"config", client_config(f, reg.client->address, priv)},
             {"port", f.port},
             {"server_ip", f.server_ip ? f.server_ip->str() : std::string()}};
    if (priv) sodium_memzero(priv->data(), priv->size());
    return json_response(200, out);
}

Response Api::ping(const View& v, const std::string& fleet, const Request& r) {
    const ServedFleet& f = v.fleets.at(fleet);
    auto src = client_address(r.peer, r.forwarded_for, v.trusted_proxies);
    if (!src || !f.subnet.contains(*src)) return error(403, fmt::format("pings come from inside {}", f.subnet.str()));
    std::string why;
    auto body = body_object(r.body, why);
    if (!body) return error(422, why);
    std::optional<std::string> host;
    if (body->contains("hostname") && !(*body)["hostname"].is_null()) {
        const json& h = (*body)["hostname"];
        if (!h.is_string() || !valid_host_name(h.get<std::string>())) return error(400, "hostname must match ^[a-z0-9_-]{1,63}$");
        host = h.get<std::string>();
    }
    PingResult p = store_.ping(fleet, *src, host, now_(), f.member_names);
    if (p.outcome == PingOutcome::unknown_client) return error(404, fmt::format("{} is not registered in fleet {}", src->str(), fleet));
    if (p.outcome == PingOutcome::bad_host_name)
        return error(400, fmt::format("hostname {} with its number would be longer than 63 characters", *host));
    if (host) changed_();  // the hosts file lists the name
    return json_response(200, json{{"status", "ok"}});
}

Response Api::index(const View& v, const Request& r) {
    std::map<std::string, size_t> counts = store_.counts();
    if (r.query.count("format") && r.query.at("format") == "json") {
        json fleets = json::array();
        for (const auto& [name, f] : v.fleets)
            fleets.push_back({{"name", name},
                              {"subnet", f.subnet.str()},
                              {"server_ip", f.server_ip ? f.server_ip->str() : ""},
                              {"port", f.port},
                              {"clients", counts[name]}});
        return json_response(200, json{{"fleets", fleets}});
    }
    std::string body =
        "<h1>wg-fleet</h1>\n<table>\n<thead><tr><th>Fleet</th><th>Subnet</th><th>Server</th><th>Port</th><th>Clients</th></tr></thead>\n<tbody>\n";
    for (const auto& [name, f] : v.fleets)
        body += fmt::format("<tr><td><a href=\"/fleet/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>\n",
                            html_escape(name), html_escape(f.subnet.str()), html_escape(f.server_ip ? f.server_ip->str() : ""), f.port,
                            counts[name]);
    body += "</tbody>\n</table>\n";
    return Response{.status = 200, .content_type = "text/html; charset=utf-8", .body = page("wg-fleet", body), .headers = {}};
}

Response Api::fleet_page(const View& v, const std::string& fleet, const Request& r) {
    const ServedFleet& f = v.fleets.at(fleet);
    const int64_t now = now_();
    static const std::map<model::Key, int64_t> none;
    auto hs = v.handshakes.find(fleet);
    const auto& handshakes = hs == v.handshakes.end() ? none : hs->second;
    auto clients = store_.clients(fleet);
    struct Row {
        const Client* c;
        int64_t handshake;
        std::string_view health;
    };
    std::vector<Row> rows;
    rows.reserve(clients.size());
    for (const auto& c : clients) {
        auto h = handshakes.find(c.public_key);
        int64_t t = h == handshakes.end() ? 0 : h->second;
        rows.push_back({&c, t, plan::to_string(plan::health({.key_known = true, .last_handshake = t, .keepalive = f.keepalive}, now))});
    }
    if (r.query.count("format") && r.query.at("format") == "json") {
        // Written directly, in the key order nlohmann's objects have: a json object per client
        // costs more than the rest of the page.
        std::string body = "{\"clients\":[";
        body.reserve(body.size() + rows.size() * 256);
        for (const auto& row : rows) {
            if (&row != rows.data()) body += ',';
            body += "{\"address\":";
            append_json_string(body, row.c->address.str());
            body += ",\"health\":";
            append_json_string(body, row.health);
            body += ",\"hostname\":";
            if (row.c->host_name) append_json_string(body, *row.c->host_name);
            else body += "null";
            fmt::format_to(std::back_inserter(body), ",\"last_seen\":{},\"latest_handshake\":{},\"public_key\":", row.c->last_seen,
                           row.handshake);
            append_json_string(body, row.c->public_key.base64());
            fmt::format_to(std::back_inserter(body), ",\"registered\":{},\"source_ip\":", row.c->registered);
            append_json_string(body, row.c->source_ip);
            body += '}';
        }
        body += "],\"fleet\":";
        append_json_string(body, fleet);
        body += ",\"subnet\":";
        append_json_string(body, f.subnet.str());
        body += '}';
        return Response{.status = 200, .content_type = "application/json", .body = std::move(body), .headers = {}};
    }
    std::string body = fmt::format("<h1>Fleet {}</h1>\n<p><a href=\"/\">All fleets</a> · subnet {} · {} client(s)</p>\n",
                                   html_escape(fleet), html_escape(f.subnet.str()), rows.size());
    body +=
        "<table>\n<thead><tr><th>Host name</th><th>Address</th><th>Public key</th><th>Source IP</th><th>Last seen</th>"
        "<th>Latest handshake</th><th>Health</th></tr></thead>\n<tbody>\n";
    for (const auto& row : rows)
        body += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                            row.c->host_name ? html_escape(*row.c->host_name) : "(none)", html_escape(row.c->address.str()),
                            html_escape(row.c->public_key.short_str()), html_escape(row.c->source_ip), utc(row.c->last_seen),
                            row.handshake ? utc(row.handshake) : "N/A", row.health);
    body += "</tbody>\n</table>\n";
    return Response{.status = 200, .content_type = "text/html; charset=utf-8", .body = page("wg-fleet: " + fleet, body), .headers = {}};
}

}  // namespace wgf::serve
