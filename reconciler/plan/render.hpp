// Rendering: the desired HostState of one node, derived from the fleet and its address plan,
// and the text artefacts users consume (hosts entries, wg-quick configs, Traefik route files).
// Pure: no I/O; key material comes in as arguments.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/host_state.hpp"
#include "model/spec.hpp"
#include "plan/address_plan.hpp"
#include "plan/index.hpp"

namespace wgf::plan {

using model::kFileMarker;

struct HostsEntry {
    model::IpAddr addr;
    std::string name;
};

// What a Fleetwide derives from the names and addressing settings alone: the address plan and
// the node index. Shared, read-only, between the Fleetwide of a configuration and that of an
// edit of it that keeps those inputs (the same fleets with the same style, pools, subnet, server
// and members, each member with the same pinned id, suffix and IPv4 address), so an edit of a
// large fleet does not plan it again.
struct FleetBasis {
    AddressPlan plan;
    NodeIndex index;
    bool operator==(const FleetBasis&) const = default;
};

// The hosts file last rendered, shared like FleetBasis between configurations whose hosts files
// are equal (the plan's inputs, the domain, every peer's controller: and every enrolled client's
// host name): under `watch` the file of a 50,000-member fleet is rendered once, not on every
// edit. One file only: rendering every node of a large fleet (`render nixos --all`)
// must not keep every node's copy.
class HostsMemo {
public:
    // The file for `node`, made by `make` unless it was the last one asked for.
    std::string get(const std::string& node, const std::function<std::string()>& make);

private:
    std::mutex mutex_;
    std::optional<std::pair<std::string, std::string>> last_;  // node, file
};

// A rendered fleet, reusable for rendering many nodes (check renders every node).
struct Fleetwide {
    const model::Config& cfg;

private:
    std::shared_ptr<const FleetBasis> basis_;
    std::shared_ptr<HostsMemo> hosts_;

public:
    const AddressPlan& plan;
    const NodeIndex& index;
    // Per fleet: every peer's routes with their owner, so one node's render need not walk all
    // peers (rendering every node of a 10,000-peer fleet stays linear).
    std::map<std::string, std::vector<std::pair<model::Prefix, std::string>>> peer_routes;
    // Per fleet and controller: the IPv4 addresses and IPv4 routes of the peers it is the
    // designated controller of. In a hub, every other node reaches those through it (see
    // InterfaceBuilder), so other controllers carry them in their entry for it.
    std::map<std::string, std::map<std::string, std::vector<model::Prefix>>> homed_v4;

    // `previous`, when given, is the Fleetwide of an earlier configuration that is still alive:
    // what it derived is shared where the inputs of that part are unchanged (the edit path of
    // `watch`). The result equals that of Fleetwide(c) either way.
    explicit Fleetwide(const model::Config& c, const Fleetwide* previous = nullptr);
    Fleetwide(const Fleetwide&) = delete;
    Fleetwide& operator=(const Fleetwide&) = delete;

    // Whether this Fleetwide shares its plan with the one it was made from (for -v and tests).
    bool reused_plan() const { return reused_plan_; }
    // The hosts file of `node` (render_hosts_file of render_hosts_entries), rendered once.
    std::string hosts_file(const std::string& node) const;

private:
    struct Shared {
        std::shared_ptr<const FleetBasis> basis;
        std::shared_ptr<HostsMemo> hosts;
        bool kept = false;
    };
    static Shared share(const model::Config& c, const Fleetwide* previous);
    Fleetwide(const model::Config& c, Shared shared);

    bool reused_plan_ = false;
};

struct RenderOptions {
    // The files (hosts file, HTTP route files). `check` renders them once per fleet instead of
    // once per node: the hosts file of a fleet with n members has n lines.
    bool files = true;
};

std::string private_key_path(const model::Config& cfg, const std::string& fleet);
// A path with `.`, `..` and repeated slashes resolved lexically and no trailing slash: the
// spelling managed files are rendered, owned and compared under.
std::string normal_path(const std::string& path);
// Whether normal_path(path) is dir or lies below it (lexically).
bool path_within(const std::string& path, const std::string& dir);
// Where a node's public key is exchanged: <keys_dir>/<fleet>/<node>.pub.
std::string published_key_path(const std::string& keys_dir, const std::string& fleet, const std::string& node);

// A node's desired state and what only the fleet knows about it.
struct Desired {
    model::HostState state;
    model::Labels labels;
};

Desired render_host(const Fleetwide& fw, const std::string& node, const RenderOptions& opts = {});

// Every member of every fleet `node` is in (all members of all fleets when node is empty).
std::vector<HostsEntry> render_hosts_entries(const Fleetwide& fw, const std::string& node);
std::string render_hosts_file(const std::vector<HostsEntry>& entries);

// The firewall rules of a node's desired state that concern interface w: those accepting its
// port, forwarding or masquerading through it, and DNAT to an address reached through it.
std::vector<const model::FwRule*> firewall_rules_of(const model::HostState& hs, const model::WgInterface& w);

// A wg-quick config for node's interface in fleet. `private_key` is the key's text when this
// machine holds it; otherwise the config loads the key from the node's key file at start.
// What wg-fleet applies for the interface and wg-quick cannot (sysctls, firewall rules, managed
// files) is listed in a comment at its top.
std::string render_wg_quick(const Fleetwide& fw, const std::string& fleet, const std::string& node,
                            const std::optional<std::string>& private_key);

std::string render_traefik_route(const model::HttpRoute& route, const std::string& target_url);
// A Caddyfile site block (imported by the Caddyfile): entrypoint `web` serves http://HOST,
// `websecure` https://HOST with Caddy's automatic HTTPS; the target's path is not part of an upstream.
std::string render_caddy_route(const model::HttpRoute& route, const std::string& target_url);
// The file a route is written to: NAME.yml for Traefik, NAME.caddy for Caddy, in http_routes_dir.
std::string http_route_file(const model::Config& cfg, const model::HttpRoute& route);
std::optional<std::string> resolve_route_target(const Fleetwide& fw, const model::HttpRoute& route);

}  // namespace wgf::plan
