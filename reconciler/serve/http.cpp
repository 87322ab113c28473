#include "serve/http.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <httplib.h>

namespace wgf::serve {
namespace {

void handle(const Router& router, const httplib::Request& req, httplib::Response& res) {
    Request r{.method = req.method, .path = req.path};
    for (const auto& [k, v] : req.params) r.query.emplace(k, v);
    r.body = req.body;
    r.peer = req.remote_addr;
    if (req.has_header("X-Forwarded-For")) r.forwarded_for = req.get_header_value("X-Forwarded-For");
    if (req.has_header("Authorization")) r.authorization = req.get_header_value("Authorization");
    if (req.has_header("X-Agent-Token")) r.agent_token = req.get_header_value("X-Agent-Token");
    Response out = router.handle(r);
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(out.body, out.content_type);
}

// What httplib's default does (reuse the address), plus binding an address not (yet) local, and
// no Nagle delay: httplib writes a response's headers and body in two writes, and the body would
// otherwise wait for the client's delayed ACK of the headers (tens of milliseconds a request).
// Accepted connections inherit the option from the listening socket.
void socket_options(int sock) {
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sock, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    setsockopt(sock, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
}

}  // namespace

std::string Listener::str() const {
    return addr.is_v6() ? fmt::format("[{}]:{}", addr.str(), port) : fmt::format("{}:{}", addr.str(), port);
}

bool Listener::loopback() const {
    if (addr.is_v4()) return addr.bytes[0] == 127;
    return addr == *model::IpAddr::parse("::1");
}

std::optional<Listener> parse_listener(std::string_view text, std::string* why) {
    auto fail = [&](const char* w) -> std::optional<Listener> {
        if (why) *why = w;
        return std::nullopt;
    };
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("expected ADDRESS:PORT");
    std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto addr = model::IpAddr::parse(host);
    if (!addr) return fail("the address must be an IP address");
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return fail("the port must be 1..65535");
    return Listener{.addr = *addr, .port = static_cast<uint16_t>(p)};
}

HttpServers::HttpServers(const Router& router) : router_(router) {}

HttpServers::~HttpServers() { stop(); }

std::optional<std::string> HttpServers::start(const std::vector<Listener>& listeners) {
    for (const auto& l : listeners) {
        auto s = std::make_unique<httplib::Server>();
        auto h = [this](const httplib::Request& req, httplib::Response& res) { handle(router_, req, res); };
        const std::string any = ".*";
        s->Get(any, h).Post(any, h).Put(any, h).Delete(any, h).Patch(any, h).Options(any, h);
        // `curl -X POST URL` sends no body and no Content-Length, which httplib refuses (400)
        // while reading the body; such a request has an empty body and is handled before.
        s->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            const bool has_body = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
            if (has_body || req.method == "GET" || req.method == "HEAD") return httplib::Server::HandlerResponse::Unhandled;
            handle(router_, req, res);
            return httplib::Server::HandlerResponse::Handled;
        });
        s->set_payload_max_length(kMaxBody);
        s->set_socket_options(socket_options);
        errno = 0;
        if (!s->bind_to_port(l.addr.str(), l.port)) {
            std::string reason = errno ? std::strerror(errno) : "cannot bind";
            stop();
            return fmt::format("cannot listen on {}: {}", l.str(), reason);
        }
        servers_.push_back(std::move(s));
    }
    for (auto& s : servers_) threads_.emplace_back([srv = s.get()] { srv->listen_after_bind(); });
    return std::nullopt;
}

void HttpServers::stop() {
    for (auto& s : servers_) s->stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
    servers_.clear();
}

}  // namespace wgf::serve
