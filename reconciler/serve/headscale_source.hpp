// The Headscale source inside `wg-fleet serve`: a thread of its own polls each served fleet with
// headscale: every poll_interval (a slow or dead Headscale server never holds up an HTTP answer or
// the reconcile loop), keeps the fleet's mapping in state_dir/headscale/ and nudges the loop when
// the nodes the fleet should have changed; the loop reads the mapping like every other command
// (inputs/enrolled) and converges. A failed poll changes nothing and is one log line.
//
// Its HTTP part, the read side of the Python sync service:
//   GET /peers                 {"processed_nodes": {"<node id>": "<ip>"}, "last_ip": "<ip>"}
//   GET /peer/{node_id}/config the node's wg-quick config, private key included: only to a
//                              loopback client or one with "Authorization: Bearer <serve token>"
// A fleet is chosen with ?fleet=NAME; without it, /peers needs exactly one served Headscale fleet
// and /peer/... the one fleet whose mapping holds the node. It also reports each fleet's poll
// state for GET /health.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "model/net.hpp"
#include "model/spec.hpp"
#include "serve/headscale.hpp"
#include "serve/router.hpp"
#include "store/store.hpp"

namespace wgf::serve {

// The fleets `node` serves that have headscale:, as the file gives them (without the members a
// run-time source added: the nodes' own names and addresses must not count as taken), with the
// state_dir the mapping lives in. Nothing else of the configuration.
model::Config headscale_fleets(const model::Config& cfg, const std::string& node);

// "Bearer <token>" against the token, in constant time.
bool bearer_matches(const std::optional<std::string>& authorization, const std::string& token);

// What the source learns from the loop after each converge.
struct HeadscaleView {
    model::Config cfg;                              // headscale_fleets()
    std::map<std::string, model::Key> server_keys;  // per fleet: the server's public key, once the device exists
    std::optional<std::string> token;               // serve's token (serve: token_file:)
    std::vector<model::Prefix> trusted_proxies;
};

class HeadscaleSource {
public:
    using Log = std::function<void(const std::string&)>;
    struct Options {
        Store& enrolled;                // serve's store: its clients' addresses are not the nodes' to take
        std::function<void()> changed;  // nudges the loop
        std::function<int64_t()> now;   // unix seconds
        Log info, warn;
    };
    explicit HeadscaleSource(Options o);
    ~HeadscaleSource();
    HeadscaleSource(const HeadscaleSource&) = delete;
    HeadscaleSource& operator=(const HeadscaleSource&) = delete;

    // Starts the polling thread; polls begin with the first view.
    void start();
    void stop();
    void set_view(HeadscaleView v);

    static bool owns(const std::vector<std::string>& seg);
    Response handle(const Request& r);
    // The poll state of each fleet as a JSON object, "" while no fleet has headscale:.
    std::string health();

private:
    struct FleetState {
        headscale::Mapping mapping;
        headscale::Health health;
        int64_t next_poll = 0;
        bool loaded = false;  // the mapping was read from its file
    };

    Options o_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::shared_ptr<const HeadscaleView> view_;
    std::map<std::string, FleetState> fleets_;
    std::thread thread_;

    void run();
    void poll(const std::shared_ptr<const HeadscaleView>& view, const std::string& fleet);
    // The fleet a request means (see above); an error response when there is none.
    std::variant<std::string, Response> pick_fleet(const Request& r, const std::optional<std::string>& node_id);
    Response peers(const Request& r);
    Response peer_config(const Request& r, const std::string& node_id);
};

}  // namespace wgf::serve
