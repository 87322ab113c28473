#include "serve/headscale_source.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include <fmt/format.h>
#include <sodium.h>
#include <nlohmann/json.hpp>

#include "inputs/enrolled.hpp"
#include "serve/headscale_client.hpp"

namespace wgf::serve {
namespace {

namespace hs = headscale;

Response method_not_allowed() {
    Response resp = error_response(405, "method not allowed");
    resp.headers.emplace_back("Allow", "GET, HEAD");
    return resp;
}

bool loopback(const model::IpAddr& a) { return a.is_v4() ? a.bytes[0] == 127 : a == *model::IpAddr::parse("::1"); }

}  // namespace

model::Config headscale_fleets(const model::Config& cfg, const std::string& node) {
    model::Config out;
    out.state_dir = cfg.state_dir;
    for (const auto& [name, f] : cfg.fleets)
        if (f.headscale && f.style == model::FleetStyle::subnet && f.subnet && f.server == node)
            out.fleets.emplace(name, inputs::without_dynamic_members(f));
    return out;
}

bool bearer_matches(const std::optional<std::string>& authorization, const std::string& token) {
    static constexpr std::string_view kBearer = "Bearer ";
    if (!authorization || !authorization->starts_with(kBearer)) return false;
    std::string_view given = std::string_view(*authorization).substr(kBearer.size());
    return given.size() == token.size() && sodium_memcmp(given.data(), token.data(), given.size()) == 0;
}

HeadscaleSource::HeadscaleSource(Options o) : o_(std::move(o)) {}

HeadscaleSource::~HeadscaleSource() { stop(); }

void HeadscaleSource::start() {
    thread_ = std::thread([this] { run(); });
}

void HeadscaleSource::stop() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void HeadscaleSource::set_view(HeadscaleView v) {
    {
        std::lock_guard lk(mu_);
        view_ = std::make_shared<const HeadscaleView>(std::move(v));
    }
    cv_.notify_all();
}

void HeadscaleSource::run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
        auto view = view_;
        if (!view) {
            cv_.wait(lk);
            continue;
        }
        std::erase_if(fleets_, [&](const auto& e) { return !view->cfg.fleets.count(e.first); });
        for (const auto& [name, f] : view->cfg.fleets) fleets_.try_emplace(name);
        const int64_t now = o_.now();
        std::optional<std::string> due;
        int64_t soonest = std::numeric_limits<int64_t>::max();
        for (auto& [name, st] : fleets_) {
            if (st.next_poll <= now) {
                due = name;
                break;
            }
            soonest = std::min(soonest, st.next_poll);
        }
        if (due) {
            fleets_[*due].next_poll = now + static_cast<int64_t>(view->cfg.fleets.at(*due).headscale->poll_interval);
            lk.unlock();
            poll(view, *due);
            lk.lock();
            continue;
        }
        // A new view (another interval, a new fleet) or stop wakes it earlier.
        if (soonest == std::numeric_limits<int64_t>::max()) cv_.wait(lk, [&] { return stop_ || view_ != view; });
        else cv_.wait_for(lk, std::chrono::seconds(soonest - now), [&] { return stop_ || view_ != view; });
    }
}

void HeadscaleSource::poll(const std::shared_ptr<const HeadscaleView>& view, const std::string& fleet) {
    hs::FileMappingStore store(hs::headscale_dir(view->cfg));
    hs::NodeKeys keys(hs::headscale_dir(view->cfg));
    bool first = false;
    {
        std::lock_guard lk(mu_);
        first = !fleets_[fleet].loaded;
    }
    // What /peers answers while the first poll runs: the mapping kept from the last run.
    if (first) {
        auto m = store.load(fleet);
        std::lock_guard lk(mu_);
        FleetState& st = fleets_[fleet];
        if (m) st.mapping = std::move(*m);
        st.loaded = m.is_ok();
        st.health.nodes = st.mapping.nodes.size();
    }
    hs::PollContext ctx{.cfg = view->cfg, .fleet = fleet, .store = store, .keys = keys, .now = o_.now(), .reserved = {}, .taken_names = {}};
    try {
        for (const auto& c : o_.enrolled.clients(fleet)) ctx.reserved.insert(c.address);
    } catch (const StoreError& e) {
        const std::string line = fmt::format("fleet {}: Headscale poll skipped, nothing changed: {}", fleet, e.what());
        o_.warn(line);
        std::lock_guard lk(mu_);
        fleets_[fleet].health.last_error = line;
        return;
    }
    hs::PollOutcome out = hs::poll_once(ctx);
    bool changed = false;
    // A Headscale that is down fails every poll the same way: the log says so once, and again
    // when the failure changes or the polls succeed again; /health has the latest.
    bool news = true;
    bool recovered = false;
    {
        std::lock_guard lk(mu_);
        FleetState& st = fleets_[fleet];
        if (out.status) {
            changed = hs::members(fleet, st.mapping) != out.members;
            st.mapping = std::move(out.mapping);
            st.loaded = true;
            st.health.last_success = ctx.now;
            recovered = !st.health.last_error.empty();
            st.health.last_error.clear();
        } else {
            news = st.health.last_error != out.status.error().message;
            st.health.last_error = out.status.error().message;
        }
        st.health.nodes = st.mapping.nodes.size();
    }
    if (!out.status && news) o_.warn(out.status.error().message + " (said once until it changes; GET /health has the latest)");
    if (recovered) o_.info(fmt::format("fleet {}: the Headscale poll succeeds again", fleet));
    for (const auto& n : out.notes) o_.info(n);
    if (changed) o_.changed();
}

bool HeadscaleSource::owns(const std::vector<std::string>& seg) {
    return (seg.size() == 1 && seg[0] == "peers") || (!seg.empty() && seg[0] == "peer");
}

std::string HeadscaleSource::health() {
    std::lock_guard lk(mu_);
    if (!view_ || view_->cfg.fleets.empty()) return "";
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [name, f] : view_->cfg.fleets) {
        auto it = fleets_.find(name);
        const hs::Health h = it == fleets_.end() ? hs::Health{} : it->second.health;
        auto j = nlohmann::json::parse(hs::health_json(h));
        j["status"] = !h.last_error.empty() ? "failing" : h.last_success ? "ok" : "starting";
        out[name] = std::move(j);
    }
    return out.dump();
}

std::variant<std::string, Response> HeadscaleSource::pick_fleet(const Request& r, const std::optional<std::string>& node_id) {
    std::lock_guard lk(mu_);
    static const decltype(model::Config::fleets) kNone;
    const auto& fleets = view_ ? view_->cfg.fleets : kNone;
    if (auto q = r.query.find("fleet"); q != r.query.end()) {
        if (!fleets.count(q->second)) return error_response(404, fmt::format("no fleet '{}' with headscale: is served here", q->second));
        return q->second;
    }
    std::vector<std::string> names;
    for (const auto& [name, f] : fleets) {
        auto st = fleets_.find(name);
        if (!node_id || (st != fleets_.end() && st->second.mapping.nodes.count(*node_id))) names.push_back(name);
    }
    if (names.size() == 1) return names.front();
    if (names.empty()) return error_response(404, node_id ? "no such node" : "no fleet with headscale: is served here");
    return error_response(
        400, fmt::format("several fleets with headscale: are served here ({}); name one with ?fleet=", fmt::join(names, ", ")));
}

Response HeadscaleSource::handle(const Request& r) {
    auto seg = path_segments(r.path);
    const bool is_config = seg.size() == 3 && seg[0] == "peer" && seg[2] == "config";
    if (seg[0] == "peer" && !is_config) return error_response(404, "not found");
    if (r.method != "GET" && r.method != "HEAD") return method_not_allowed();
    return is_config ? peer_config(r, seg[1]) : peers(r);
}

Response HeadscaleSource::peers(const Request& r) {
    auto fleet = pick_fleet(r, std::nullopt);
    if (auto* err = std::get_if<Response>(&fleet)) return *err;
    std::lock_guard lk(mu_);
    auto st = fleets_.find(std::get<std::string>(fleet));
    return Response{.status = 200,
                    .content_type = "application/json",
                    .body = hs::peers_json(st == fleets_.end() ? hs::Mapping{} : st->second.mapping),
                    .headers = {}};
}

Response HeadscaleSource::peer_config(const Request& r, const std::string& node_id) {
    std::shared_ptr<const HeadscaleView> view;
    {
        std::lock_guard lk(mu_);
        view = view_;
    }
    if (!view) return error_response(503, "starting");
    // The answer carries the node's private key: only for this machine or a holder of the token.
    auto client = client_address(r.peer, r.forwarded_for, view->trusted_proxies);
    if (!(client && loopback(*client)) && !(view->token && bearer_matches(r.authorization, *view->token)))
        return error_response(403,
                              "a node's config carries its private key: ask from this machine (loopback) or with "
                              "\"Authorization: Bearer <serve token>\"");
    if (!hs::valid_node_id(node_id)) return error_response(404, "no such node");
    auto fleet = pick_fleet(r, node_id);
    if (auto* err = std::get_if<Response>(&fleet)) return *err;
    const std::string& name = std::get<std::string>(fleet);
    auto key = view->server_keys.find(name);
    if (key == view->server_keys.end()) return error_response(503, "the server's key is not known yet");
    hs::FileMappingStore store(hs::headscale_dir(view->cfg));
    hs::NodeKeys keys(hs::headscale_dir(view->cfg));
    hs::PollContext ctx{.cfg = view->cfg, .fleet = name, .store = store, .keys = keys, .now = o_.now(), .reserved = {}, .taken_names = {}};
    auto text = hs::node_config(ctx, node_id, key->second);
    if (!text) {
        o_.warn(fmt::format("GET {}: {}", r.path, text.error().message));
        return error_response(500, "the node's config cannot be rendered (see serve's log)");
    }
    if (!*text) return error_response(404, "no such node");
    return Response{
        .status = 200, .content_type = "text/plain; charset=utf-8", .body = std::move(**text), .headers = {{"Cache-Control", "no-store"}}};
}

}  // namespace wgf::serve
