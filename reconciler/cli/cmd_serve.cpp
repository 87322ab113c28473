// serve: watch's service (run_service) plus the enrollment API on HTTP listeners of its own
// threads. The API writes only serve's store and nudges the loop, which loads the configuration
// with the store's clients (inputs/enrolled) and converges; serve never touches the device or
// the YAML itself. After each converge the API learns the served fleets, the server keys and
// the handshakes; on each tick clients silent for longer than prune_timeout are removed.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/service.hpp"
#include "inputs/enrolled.hpp"
#include "model/fd.hpp"
#include "serve/agent.hpp"
#include "serve/agent_http.hpp"
#include "serve/api.hpp"
#include "serve/headscale_client.hpp"
#include "serve/headscale_source.hpp"
#include "serve/http.hpp"
#include "store/prune.hpp"
#include "store/store.hpp"

namespace wgf::cli {
namespace {

constexpr uint16_t kDefaultPort = 8000;
constexpr size_t kTokenMax = 4096;

// The fleets `node` serves: subnet style with a subnet, `node` their server.
std::map<std::string, serve::ServedFleet> served_fleets(const model::Config& cfg, const std::string& node) {
    std::map<std::string, serve::ServedFleet> out;
    for (const auto& [name, f] : cfg.fleets) {
        if (f.style != model::FleetStyle::subnet || !f.subnet || f.server != node) continue;
        std::set<std::string> members{f.server};
        for (const auto& [n, p] : f.peers)
            if (!p.dynamic) members.insert(n);
        for (const auto& [n, c] : f.controllers) members.insert(n);
        out.emplace(name, serve::ServedFleet{.subnet = *f.subnet,
                                             .server_ip = f.ip6,
                                             .port = f.port,
                                             .external_ip = f.external_ip,
                                             .keepalive = f.keepalive,
                                             .interface = f.interface,
                                             .server_key = std::nullopt,
                                             .member_names = std::move(members)});
    }
    return out;
}

// The token file's content without its trailing newline: a secret file (0600, regular, ours to
// read), never logged. The error names the file only.
std::optional<std::string> read_token(const std::string& path, std::string& error) {
    auto fail = [&](std::string e) -> std::optional<std::string> {
        error = std::move(e);
        return std::nullopt;
    };
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.fd < 0) return fail(fmt::format("{}: cannot read the token file: {}", path, std::strerror(errno)));
    struct stat st {};
    if (fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) return fail(fmt::format("{}: the token file is not a regular file", path));
    if (st.st_mode & 077)
        return fail(
            fmt::format("{}: the token file is mode {:04o}; it must be readable by its owner only (chmod 600)", path, st.st_mode & 07777));
    std::string token(kTokenMax, '\0');
    ssize_t n = read(fd.fd, token.data(), token.size());
    if (n < 0) return fail(fmt::format("{}: cannot read the token file: {}", path, std::strerror(errno)));
    token.resize(static_cast<size_t>(n));
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) return fail(fmt::format("{}: the token file is empty", path));
    return token;
}

std::vector<serve::Listener> listeners(const model::Config& cfg, const std::map<std::string, serve::ServedFleet>& served,
                                       const std::vector<std::string>& args, std::string& error) {
    std::vector<serve::Listener> out;
    auto add = [&](const std::string& text) {
        std::string why;
        if (auto l = serve::parse_listener(text, &why)) out.push_back(*l);
        else error = fmt::format("--listen {}: {}", text, why);
    };
    if (!args.empty()) {
        for (const auto& a : args) add(a);
    } else if (!cfg.serve.listen.empty()) {
        for (const auto& e : cfg.serve.listen) add(e.str());
    } else {
        out.push_back({.addr = *model::IpAddr::parse("127.0.0.1"), .port = kDefaultPort});
        for (const auto& [name, f] : served)
            if (f.server_ip) out.push_back({.addr = *f.server_ip, .port = kDefaultPort});
    }
    return out;
}

// What serve keeps across runs of the loop.
struct ServeState {
    spdlog::logger& log;
    serve::Store& store;
    serve::Api& api;
    linux_::EventNudges& nudges;
    std::string node;
    std::optional<std::string> token;
    std::map<std::string, std::map<model::Key, int64_t>> handshakes;  // as the last full read saw them

    void after_run(apply::Trigger why, const apply::RunResult& r, const Loaded& l, int64_t now) {
        const model::Config& cfg = l.cfg();
        serve::View v{
            .fleets = served_fleets(cfg, node), .domain = cfg.domain, .token = token, .trusted_proxies = cfg.serve.trusted_proxies};
        for (auto& [name, f] : v.fleets) {
            if (auto w = r.desired.interfaces.find(f.interface); w != r.desired.interfaces.end()) f.server_key = w->second.public_key;
            // Registrations skip the addresses of Headscale nodes and the file's members; the
            // store knows its own clients (named with a '.', which no other member's name has).
            if (auto fp = l.fleet->plan.fleets.find(name); fp != l.fleet->plan.fleets.end())
                for (const auto& [n, na] : fp->second.nodes)
                    if (n.find('.') == std::string::npos)
                        for (const auto& a : na.addresses) f.member_addresses.insert(a.addr);
            if (r.live && !r.used_cache) {
                auto& hs = handshakes[name];
                hs.clear();
                if (auto st = r.live->stats.find(f.interface); st != r.live->stats.end())
                    for (const auto& [k, s] : st->second) hs[k] = s.last_handshake;
            }
        }
        v.handshakes = handshakes;
        // Only a tick reads every device: the handshakes a prune needs are fresh then.
        if (why == apply::Trigger::tick) prune(v, cfg.prune_timeout, now);
        api.set_view(std::move(v));
    }

    void prune(const serve::View& v, uint64_t timeout, int64_t now) {
        bool removed = false;
        for (const auto& [name, f] : v.fleets) {
            auto clients = store.clients(name);
            auto gone = serve::clients_to_prune(
                clients, v.handshakes.count(name) ? v.handshakes.at(name) : decltype(handshakes)::mapped_type{}, now, timeout);
            if (gone.empty()) continue;
            store.remove(name, gone);
            for (const auto& k : gone) log.info("pruned {} from fleet {}: silent for more than {}s", k.short_str(), name, timeout);
            removed = true;
        }
        if (removed) nudges.nudge();
    }
};

// What the Headscale source learns after each converge: its fleets and their servers' keys.
serve::HeadscaleView headscale_view(const model::Config& cfg, const std::string& node, const apply::RunResult& r,
                                    const std::optional<std::string>& token) {
    serve::HeadscaleView v{
        .cfg = serve::headscale_fleets(cfg, node), .server_keys = {}, .token = token, .trusted_proxies = cfg.serve.trusted_proxies};
    for (const auto& [name, f] : v.cfg.fleets)
        if (auto w = r.desired.interfaces.find(f.interface); w != r.desired.interfaces.end() && w->second.public_key)
            v.server_keys.emplace(name, *w->second.public_key);
    return v;
}

}  // namespace

int cmd_serve(const Globals& g, int interval_s, const std::vector<std::string>& listen_args) {
    auto log = service_logger(g);
    auto l = load(g);
    if (!l->fleet) return kError;
    const std::string node = this_node(g);
    auto served = served_fleets(l->cfg(), node);
    if (served.empty()) log->warn("node '{}' serves no fleet of {} (a fleet with subnet: whose server is this node)", node, g.config);
    std::optional<std::string> token;
    if (l->cfg().serve.token_file) {
        std::string why;
        token = read_token(*l->cfg().serve.token_file, why);
        if (!token) {
            log->error("{}", why);
            return kError;
        }
    }
    // The edge agent API's token: without one its endpoints answer local requests only.
    std::optional<std::string> agent_token;
    if (l->cfg().serve.agent_token_file) {
        std::string why;
        agent_token = read_token(*l->cfg().serve.agent_token_file, why);
        if (!agent_token) {
            log->error("{}", why);
            return kError;
        }
    }
    std::string error;
    auto where = listeners(l->cfg(), served, listen_args, error);
    if (!error.empty()) {
        log->error("{}", error);
        return kError;
    }
    for (const auto& li : where)
        if (!li.loopback() && !token)
            log->warn("listening on {} without a token: anyone who reaches it can register (set serve: token_file:)", li.str());
    std::string off_loopback;
    for (const auto& li : where)
        if (!li.loopback()) off_loopback += (off_loopback.empty() ? "" : ", ") + li.str();
    if (!agent_token && !off_loopback.empty())
        log->warn("listening on {} without an agent token: the edge agent API answers local requests only (set serve: agent_token_file:)",
                  off_loopback);

    try {
        serve::Store store(l->cfg().state_dir);
        linux_::EventNudges nudges;
        serve::Api api(
            store, [&nudges] { nudges.nudge(); }, [] { return static_cast<int64_t>(time(nullptr)); },
            [&log](const std::string& s) { log->info("{}", s); }, [&log](const std::string& s) { log->warn("{}", s); });
        serve::Router router([&api] { return api.ready(); }, [&log](const std::string& s) { log->warn("{}", s); });
        router.add(serve::Part{
            .name = "enrollment", .owns = serve::Api::owns, .handle = [&api](const serve::Request& r) { return api.handle(r); }});
        // The edge agent API writes its drop-in and nudges the loop, which applies it.
        serve::EdgeAgent edge(serve::AgentOptions{.load = load_options(g), .node = node, .file_name = "50-agent.yaml"});
        serve::AgentHttp agent_api(
            edge, std::move(agent_token), [&nudges] { nudges.nudge(); }, [&log](const std::string& s) { log->info("{}", s); },
            [&log](const std::string& s) { log->warn("{}", s); });
        router.add(agent_api.part());
        // The Headscale source: a thread polls each fleet with headscale:, a part answers /peers
        // and /peer/{node_id}/config, and /health reports the polls.
        serve::HeadscaleSource headscale({.enrolled = store,
                                          .changed = [&nudges] { nudges.nudge(); },
                                          .now = [] { return static_cast<int64_t>(time(nullptr)); },
                                          .info = [&log](const std::string& s) { log->info("{}", s); },
                                          .warn = [&log](const std::string& s) { log->warn("{}", s); }});
        auto headscale_handle = [&headscale](const serve::Request& r) { return headscale.handle(r); };
        router.add(serve::Part{.name = "headscale", .owns = serve::HeadscaleSource::owns, .handle = headscale_handle});
        router.add_health("headscale", [&headscale] { return headscale.health(); });
        serve::HttpServers http(router);
        ServeState state{.log = *log, .store = store, .api = api, .nudges = nudges, .node = node, .token = token, .handshakes = {}};
        ServiceHooks hooks{.nudges = &nudges,
                           .before_loop =
                               [&] {
                                   if (auto err = http.start(where)) {
                                       log->error("{}", *err);
                                       return false;
                                   }
                                   std::string list;
                                   for (const auto& li : where) list += (list.empty() ? "" : ", ") + li.str();
                                   log->info("serving the HTTP API (enrollment, edge agent, Headscale read side) on {}", list);
                                   return true;
                               },
                           .after_run = [&state](apply::Trigger why, const apply::RunResult& r, const Loaded& ld,
                                                 int64_t now) { state.after_run(why, r, ld, now); }};
        // The Headscale source polls once the HTTP threads run, and learns its fleets and their
        // servers' keys after each converge.
        hooks.before_loop = [start = std::move(hooks.before_loop), &headscale] {
            if (!start()) return false;
            headscale.start();
            return true;
        };
        hooks.after_run = [run = std::move(hooks.after_run), &headscale, &node, &token](apply::Trigger why, const apply::RunResult& r,
                                                                                        const Loaded& ld, int64_t now) {
            run(why, r, ld, now);
            headscale.set_view(headscale_view(ld.cfg(), node, r, token));
        };
        l.reset();
        int rc = run_service(g, interval_s, *log, hooks);
        http.stop();
        headscale.stop();
        return rc;
    } catch (const serve::StoreError& e) {
        log->error("{}", e.what());
        return kError;
    }
}

// `serve --import-edge-state FILE`: the edge agent's state.json into the agent's drop-in, validated
// with the whole configuration like every agent request; then serve exits.
// With --json (version 1 of each shape, README "JSON output"), the result as JSON, or on an error
// check's diagnostics with the error.
int import_failed(const Loaded& l, bool json, const std::string& message) {
    fmt::print(stderr, "{}\n", message);
    if (json) fmt::print("{}", output::diagnostics_json(l.diags, l.sources, {message}));
    return kError;
}

int import_edge_state(const Globals& g, const std::string& file, bool json) {
    auto l = load(g);
    if (!l->fleet) {
        if (json) fmt::print("{}", output::diagnostics_json(l->diags, l->sources));
        return kError;
    }
    serve::EdgeAgent agent(serve::AgentOptions{.load = load_options(g), .node = this_node(g), .file_name = "50-agent.yaml"});
    serve::AgentResult r = serve::import_edge_state(agent, file);
    if (r.status != serve::AgentResult::Status::ok) return import_failed(*l, json, fmt::format("{}: not imported: {}", file, r.message));
    if (json) fmt::print("{}\n", nlohmann::ordered_json{{"version", 1}, {"source", file}, {"dropin", agent.dropin_path()}}.dump(2));
    else fmt::print("{}: imported into {}\n", file, agent.dropin_path());
    return kOk;
}

// `serve --import-sync-state FILE`: the Headscale sync service's state into the mapping of the
// fleet with headscale: (or --fleet's); every node keeps its address; then serve exits.
int import_sync_state(const Globals& g, const std::string& file, const std::string& fleet_arg, bool json) {
    auto l = load(g);
    if (!l->fleet) {
        if (json) fmt::print("{}", output::diagnostics_json(l->diags, l->sources));
        return kError;
    }
    // Allocated against the file's members only: the mapping's own nodes are not taken.
    const model::Config cfg = inputs::without_dynamic_members(l->cfg());
    std::vector<std::string> candidates;
    for (const auto& [name, f] : cfg.fleets)
        if (f.headscale && (fleet_arg.empty() || name == fleet_arg)) candidates.push_back(name);
    if (candidates.size() != 1)
        return import_failed(*l, json,
                             fmt::format("{}: {}", g.config,
                                         candidates.empty() ? (fleet_arg.empty() ? std::string("no fleet has headscale:")
                                                                                 : fmt::format("fleet '{}' has no headscale:", fleet_arg))
                                                            : "several fleets have headscale:; name one with --fleet"));
    namespace hs = serve::headscale;
    hs::FileMappingStore store(hs::headscale_dir(cfg));
    hs::NodeKeys keys(hs::headscale_dir(cfg));
    hs::PollContext ctx{.cfg = cfg,
                        .fleet = candidates.front(),
                        .store = store,
                        .keys = keys,
                        .now = static_cast<int64_t>(time(nullptr)),
                        .reserved = {},
                        .taken_names = {}};
    auto m = hs::import_sync_state_file(ctx, file);
    if (!m) return import_failed(*l, json, fmt::format("{}: not imported: {}", file, m.error().message));
    if (json) {
        fmt::print("{}\n", nlohmann::ordered_json{{"version", 1},
                                                  {"source", file},
                                                  {"fleet", candidates.front()},
                                                  {"nodes", hs::members(candidates.front(), *m).size()},
                                                  {"mapping_dir", hs::headscale_dir(cfg)}}
                               .dump(2));
        return kOk;
    }
    fmt::print("{}: imported {} node(s) into fleet {} ({})\n", file, hs::members(candidates.front(), *m).size(), candidates.front(),
               hs::headscale_dir(cfg));
    return kOk;
}

}  // namespace wgf::cli
