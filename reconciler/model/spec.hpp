// The desired fleet as the YAML file describes it, after parsing and before any derivation.
// Plain aggregates: everything derived (addresses, peers of a node) lives in plan/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/net.hpp"

namespace wgf::model {

enum class Topology { hub, mesh };
enum class FleetStyle { clan, subnet };
enum class Role { controller, peer, server };
enum class Proto { tcp, udp };

const char* to_string(Topology t);
const char* to_string(Role r);
const char* to_string(Proto p);

struct Member;
struct Fleet;
// The controller a peer of `f` sends all its traffic through, or null when it has none.
const std::string* exit_node_of(const Fleet& f, const Member& peer);

struct Member {
    std::optional<Key> public_key;
    std::optional<Endpoint> endpoint;
    std::optional<std::string> controller;  // peers: the designated controller
    std::vector<Prefix> routes;             // prefixes this member routes for (subnet router)
    std::optional<uint16_t> id;             // controllers: pinned 16-bit /56 id
    std::optional<uint64_t> suffix;         // peers: pinned 64-bit suffix
    std::optional<IpAddr> ipv4;
    // peers: the controller all its traffic goes out through; "" opts out of the fleet's default
    // (exit_node: none). Unset: the fleet's exit_node.
    std::optional<std::string> exit_node;
    // A member a run-time source adds (serve's enrolled clients), not the file: pinned by suffix,
    // listed in the hosts file only under its host name, if it has one.
    bool dynamic = false;
    std::optional<std::string> host_name;

    auto operator<=>(const Member&) const = default;
};

// A Headscale server whose nodes `wg-fleet serve` makes clients of a subnet-style fleet.
struct Headscale {
    std::string url;              // http:// or https://, without /api/v1/node
    std::string api_key_file;     // a secret file (0600): only its path is configuration
    uint64_t poll_interval = 30;  // seconds
    uint64_t timeout = 10;        // seconds one poll may take
    uint64_t grace = 10 * 60;     // seconds a node may be missing before its peer goes
    std::optional<Prefix> pool;   // where node addresses come from; default: the fleet's subnet

    auto operator<=>(const Headscale&) const = default;
};

struct Fleet {
    FleetStyle style = FleetStyle::clan;
    std::string interface;  // defaulted by the parser
    uint16_t port = 51820;
    Topology topology = Topology::hub;
    std::optional<uint32_t> mtu;
    uint16_t keepalive = 25;
    bool exclusive = false;
    std::optional<uint64_t> key_max_age;  // seconds; none: the top level's, if any
    std::optional<Prefix> ipv4;
    std::map<std::string, Member> controllers;  // clan style
    std::map<std::string, Member> peers;
    // subnet style (seed 002)
    std::optional<IpAddr> ip6;
    std::optional<Prefix> subnet;
    std::optional<std::string> external_ip;  // host clients connect to
    std::string server = "server";           // node name of the server
    std::optional<Key> server_public_key;
    std::optional<Headscale> headscale;
    std::optional<std::string> exit_node;  // clan style: the default exit node of its peers

    auto operator<=>(const Fleet&) const = default;
};

struct Forward {
    std::string name;
    std::string node;
    Proto proto = Proto::tcp;
    uint16_t port = 0;
    std::string to;                 // as written: a member's node name, or an IP address
    std::optional<IpAddr> to_addr;  // set when `to` is an IP address
    uint16_t to_port = 0;
    std::optional<std::string> fleet;

    auto operator<=>(const Forward&) const = default;
};

// What serves the HTTP routes: Traefik reads one YAML file per route from its file provider's
// directory; Caddy imports one snippet per route from a directory its Caddyfile names, and is
// reloaded (caddy_reload) after they change, since it does not watch imported files.
enum class HttpServer : uint8_t { traefik, caddy };

struct HttpRoute {
    std::string name;
    std::string node;
    std::string host;
    std::string to;  // URL as written
    std::string entrypoint = "websecure";
    std::optional<std::string> certresolver;

    auto operator<=>(const HttpRoute&) const = default;
};

// `wg-fleet serve`'s settings (its enrollment API).
struct Serve {
    // "ADDRESS:PORT" each; none: 127.0.0.1:8000 and each served fleet's ip6 on port 8000.
    std::vector<Endpoint> listen;
    // A file holding the bearer token mutating endpoints require (0600); none: no token.
    std::optional<std::string> token_file;
    // A file holding the X-Agent-Token the edge agent API requires (0600); none: loopback only.
    std::optional<std::string> agent_token_file;
    // Proxies whose X-Forwarded-For is believed; none by default.
    std::vector<Prefix> trusted_proxies;

    auto operator<=>(const Serve&) const = default;
};

// The top-level `firewall:` settings.
struct FirewallSettings {
    // Insert the accept rules that other tables' dropping input and forward chains need, marked
    // as ours (model::ForeignRule), instead of only warning.
    bool foreign_accept = false;

    auto operator<=>(const FirewallSettings&) const = default;
};

struct Config {
    std::optional<std::string> domain;
    uint64_t prune_timeout = 30 * 60;  // seconds
    std::string state_dir = "/var/lib/wg-fleet";
    std::optional<std::string> keys_dir;
    // `check` warns about a member key older than this (seconds); a fleet may set its own.
    std::optional<uint64_t> key_max_age;
    std::optional<std::string> userspace;
    std::string hosts_file = "/run/wg_fleet_hosts";
    std::string http_routes_dir = "/etc/traefik/dynamic";  // /etc/caddy/wg-fleet for Caddy
    HttpServer http_server = HttpServer::traefik;
    std::string caddy_reload = "caddy reload --config /etc/caddy/Caddyfile";
    std::map<std::string, Fleet> fleets;
    std::vector<Forward> forwards;
    std::vector<HttpRoute> http_routes;
    Serve serve;
    FirewallSettings firewall;

    auto operator<=>(const Config&) const = default;
};

}  // namespace wgf::model
