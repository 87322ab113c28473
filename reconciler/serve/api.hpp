// The enrollment API of `wg-fleet serve` (the Python wg-fleet manager's endpoints), independent
// of the HTTP library: a request in, a response out. It writes only serve's store and says so
// (`changed`); the reconcile loop turns the store into peers. What it knows of the fleets comes
// from the loop after each converge (set_view): the served fleets, the server's public keys and
// the handshakes last read.
//
//   POST /fleet/{fleet}/register  {"public_key": "..."} optional   -> config, port, server_ip
//   POST /fleet/{fleet}/ping      {"hostname": "..."} optional     -> {"status": "ok"}
//   GET  /, GET /fleet/{fleet}    HTML dashboard; ?format=json for the same data
//
// Errors: unknown path or fleet 404, wrong method 405 (with Allow), malformed JSON 422, a bad
// host name 400, a ping from outside the subnet 403, an unregistered pinger 404, a missing or
// wrong token 401, a full subnet 503; nothing is stored on any of them. Private keys generated
// for a client appear only in its register response, never in a log line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/net.hpp"
#include "store/store.hpp"

namespace wgf::serve {

struct Request {
    std::string method;
    std::string path;  // without the query
    std::map<std::string, std::string> query{};
    std::string body{};
    std::string peer{};                          // the TCP peer's address
    std::optional<std::string> forwarded_for{};  // X-Forwarded-For
    std::optional<std::string> authorization{};  // Authorization
    std::optional<std::string> agent_token{};    // X-Agent-Token (the edge agent API's)
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body{};
    std::vector<std::pair<std::string, std::string>> headers{};
};

// A fleet this node serves: subnet style, this node its server.
struct ServedFleet {
    model::Prefix subnet{};
    std::optional<model::IpAddr> server_ip{};
    uint16_t port = 0;
    std::optional<std::string> external_ip{};
    uint16_t keepalive = 0;
    std::string interface {};
    std::optional<model::Key> server_key{};  // unknown until the first converge made the device
    std::set<std::string> member_names{};    // the file's members: no client's host name equals one
    // The addresses of the other members (the file's, Headscale nodes): no client's.
    std::set<model::IpAddr> member_addresses{};
};

// What the loop tells the API after each converge.
struct View {
    std::map<std::string, ServedFleet> fleets{};
    std::optional<std::string> domain{};
    std::optional<std::string> token{};  // mutating endpoints need "Authorization: Bearer <token>"
    std::vector<model::Prefix> trusted_proxies{};
    // Per fleet, the device's peers' last handshakes (seconds since the epoch; 0 never).
    std::map<std::string, std::map<model::Key, int64_t>> handshakes{};
};

// The client's address as the API sees it: the TCP peer's, or, when that is a trusted proxy,
// the right-most address of X-Forwarded-For that is not one. IPv4-mapped IPv6 addresses count
// as IPv4. nullopt when nothing usable is there.
std::optional<model::IpAddr> client_address(const std::string& peer, const std::optional<std::string>& forwarded_for,
                                            const std::vector<model::Prefix>& trusted);

// The wg-quick config a client registers with: its address, the server as its one peer, the
// whole subnet routed through it. `private_key`: the generated key, else a placeholder line.
std::string client_config(const ServedFleet& f, const model::IpAddr& address, const std::optional<std::string>& private_key);

class Api {
public:
    using Log = std::function<void(const std::string&)>;
    Api(Store& store, std::function<void()> changed, std::function<int64_t()> now, Log info, Log warn);

    void set_view(View v);
    // The paths this part of the API answers (router.hpp): / and /fleet/...
    static bool owns(const std::vector<std::string>& seg);
    // Whether the first converge has finished (before it, every request gets 503).
    bool ready();
    Response handle(const Request& r);

private:
    Store& store_;
    std::function<void()> changed_;
    std::function<int64_t()> now_;
    Log info_, warn_;
    std::mutex mu_;
    std::shared_ptr<const View> view_;

    std::shared_ptr<const View> view();
    Response dispatch(const Request& r);
    Response register_client(const View& v, const std::string& fleet, const Request& r);
    Response ping(const View& v, const std::string& fleet, const Request& r);
    Response index(const View& v, const Request& r);
    Response fleet_page(const View& v, const std::string& fleet, const Request& r);
};

}  // namespace wgf::serve
