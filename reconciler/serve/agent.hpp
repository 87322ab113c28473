// The edge agent API's state (HTTP routes and TCP/UDP forwards created over HTTP) kept as one
// drop-in of the fleet file that wg-fleet owns: `<dropin_dir>/50-agent.yaml`, its first line
// model::kFileMarker. Every change is validated by loading the whole configuration with the
// candidate drop-in in place of the current one (inputs::load over a temporary copy of the
// drop-in directory) and written atomically only when it loads without errors; an invalid
// change returns the diagnostics and leaves the file as it was. No HTTP here: the server maps
// AgentResult to status codes. The reconcile loop applies the drop-in like any other.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "inputs/load.hpp"

namespace wgf::serve {

// The agent's request bodies, field for field.
struct AgentRoute {
    std::string route_id;
    std::string hostname;
    std::string target_url;
    std::string entrypoint = "websecure";
    std::optional<std::string> certresolver;

    bool operator==(const AgentRoute&) const = default;
};

struct AgentForward {
    std::string forward_id;
    uint16_t public_port = 0;
    std::string target_ip;
    uint16_t target_port = 0;
    std::string proto = "tcp";

    bool operator==(const AgentForward&) const = default;
};

struct AgentEntries {
    std::vector<AgentRoute> routes;
    std::vector<AgentForward> forwards;

    bool operator==(const AgentEntries&) const = default;
};

// A request body, or why it is not one (the text of a 422 answer).
std::variant<AgentRoute, std::string> route_from_json(std::string_view body);
std::variant<AgentForward, std::string> forward_from_json(std::string_view body);
// The bodies again, as the list endpoints return them.
std::string route_to_json(const AgentRoute& r);
std::string forward_to_json(const AgentForward& f);
std::string routes_to_json(const std::vector<AgentRoute>& routes);
std::string forwards_to_json(const std::vector<AgentForward>& forwards);

// The drop-in's text: the marker line, then `http_routes:` and `forwards:` on `node`, every
// string a double-quoted scalar (a request cannot inject YAML).
std::string render_dropin(const AgentEntries& entries, const std::string& node);
// What a drop-in of ours holds; an error message when the text is not one.
std::variant<AgentEntries, std::string> parse_dropin(std::string_view text, const std::string& file_name);

// The agent's /data/state.json: see import_edge_state in wg-fleet(8) for the shapes accepted.
std::variant<AgentEntries, std::string> entries_from_state_json(std::string_view text);

struct AgentOptions {
    inputs::LoadOptions load;  // the configuration the drop-in belongs to
    std::string node;          // the gateway: every entry is on this node
    std::string file_name = "50-agent.yaml";
};

struct AgentResult {
    enum class Status : uint8_t {
        ok,
        invalid,    // the request or the configuration it would make is invalid: 400/422
        not_found,  // no entry with that id in the drop-in: 404
        error,      // the drop-in could not be read or written: 500
    };
    Status status = Status::ok;
    std::string message;    // diagnostics of an invalid change, or what failed
    bool replaced = false;  // an add replaced the entry of the same id
};

class EdgeAgent {
public:
    explicit EdgeAgent(AgentOptions o);

    const std::string& dropin_path() const { return path_; }
    // What the drop-in holds now (nothing when it does not exist).
    std::variant<AgentEntries, std::string> entries() const;

    // An entry with the id of an existing one replaces it, as the agent's file per id did.
    AgentResult add_route(const AgentRoute& r);
    AgentResult add_forward(const AgentForward& f);
    AgentResult delete_route(const std::string& route_id);
    AgentResult delete_forward(const std::string& forward_id);
    // Adds (or replaces by id) every entry at once, validated together.
    AgentResult import(const AgentEntries& add);

private:
    // Validates `next` as the drop-in and writes it.
    AgentResult commit(const AgentEntries& next);

    AgentOptions o_;
    std::string dir_, path_;
    mutable std::mutex mu_;
};

// Reads the agent's /data/state.json and imports it (EdgeAgent::import): what
// `serve --import-edge-state FILE` does.
AgentResult import_edge_state(EdgeAgent& agent, const std::string& state_file);

}  // namespace wgf::serve
