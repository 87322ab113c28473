// A test driver of the Headscale source, standing in for serve's loop: loads the fleet file as
// every command does, then runs one step against state_dir and prints its result as JSON.
//
//   headscale_poll CONFIG FLEET poll [NOW]     one poll; stdout: the members afterwards
//   headscale_poll CONFIG FLEET import FILE    seed 000's sync-service-state.json
//   headscale_poll CONFIG FLEET peers          GET /peers
//   headscale_poll CONFIG FLEET config ID      GET /peer/ID/config (exit 3: unknown node)
//
// Log lines go to stderr. Exit 0 on success, 1 when the step failed, 2 on usage or a bad file.
#include <ctime>
#include <iostream>
#include <string>

#include "config/diag.hpp"
#include "inputs/enrolled.hpp"
#include "inputs/load.hpp"
#include "serve/headscale_client.hpp"

using namespace wgf;
namespace hs = wgf::serve::headscale;

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: headscale_poll CONFIG FLEET poll [NOW] | import FILE | peers | config ID\n";
        return 2;
    }
    const std::string fleet = argv[2], cmd = argv[3];
    auto loaded = inputs::load(
        inputs::LoadOptions{.config = argv[1], .dropin_dir = {}, .state_dir = {}, .keys_only_from = {}, .files_root = {}});
    if (!loaded->fleet) {
        std::cerr << config::render_all(loaded->diags, loaded->sources);
        return 2;
    }
    // The Headscale source allocates against the file's members only (see sync_input).
    const model::Config cfg = inputs::without_dynamic_members(loaded->cfg());
    if (!cfg.fleets.count(fleet)) {
        std::cerr << "no fleet " << fleet << "\n";
        return 2;
    }
    hs::FileMappingStore store(hs::headscale_dir(cfg));
    hs::NodeKeys keys(hs::headscale_dir(cfg));
    const int64_t now = cmd == "poll" && argc > 4 ? std::stoll(argv[4]) : static_cast<int64_t>(std::time(nullptr));
    hs::PollContext ctx{.cfg = cfg, .fleet = fleet, .store = store, .keys = keys, .now = now, .reserved = {}, .taken_names = {}};

    if (cmd == "poll") {
        hs::PollOutcome out = hs::poll_once(ctx);
        for (const auto& n : out.notes) std::cerr << n << "\n";
        if (!out.status) std::cerr << "error: " << out.status.error().message << "\n";
        std::cout << hs::members_json(out.members);
        return out.status ? 0 : 1;
    }
    if (cmd == "import" && argc > 4) {
        auto m = hs::import_sync_state_file(ctx, argv[4]);
        if (!m) {
            std::cerr << "error: " << m.error().message << "\n";
            return 1;
        }
        std::cout << hs::members_json(hs::members(fleet, *m));
        return 0;
    }
    if (cmd == "peers") {
        auto m = store.load(fleet);
        if (!m) {
            std::cerr << "error: " << m.error().message << "\n";
            return 1;
        }
        std::cout << hs::peers_json(*m);
        return 0;
    }
    if (cmd == "config" && argc > 4) {
        const auto& f = cfg.fleets.at(fleet);
        if (!f.server_public_key) {
            std::cerr << "error: the fleet names no server public_key\n";
            return 2;
        }
        auto conf = hs::node_config(ctx, argv[4], *f.server_public_key);
        if (!conf) {
            std::cerr << "error: " << conf.error().message << "\n";
            return 1;
        }
        if (!*conf) {
            std::cerr << "no Headscale node " << argv[4] << "\n";
            return 3;
        }
        std::cout << **conf;
        return 0;
    }
    std::cerr << "usage: headscale_poll CONFIG FLEET poll [NOW] | import FILE | peers | config ID\n";
    return 2;
}
