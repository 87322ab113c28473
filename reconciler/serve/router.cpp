#include "serve/router.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wgf::serve {

std::vector<std::string> path_segments(std::string_view path) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < path.size()) {
        size_t j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        if (j > i) out.emplace_back(path.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

Response error_response(int status, const std::string& detail) {
    return Response{.status = status, .content_type = "application/json", .body = nlohmann::json{{"detail", detail}}.dump(), .headers = {}};
}

Router::Router(std::function<bool()> ready, Log warn) : ready_(std::move(ready)), warn_(std::move(warn)) {}

void Router::add(Part p) { parts_.push_back(std::move(p)); }

void Router::add_health(std::string key, std::function<std::string()> report) { health_.emplace_back(std::move(key), std::move(report)); }

Response Router::handle(const Request& r) const {
    auto seg = path_segments(r.path);
    if (seg.size() == 1 && seg[0] == "health") {
        if (r.method != "GET" && r.method != "HEAD") {
            Response resp = error_response(405, "method not allowed");
            resp.headers.emplace_back("Allow", "GET, HEAD");
            return resp;
        }
        const bool ok = ready_();
        nlohmann::json body{{"status", ok ? "ok" : "starting"}};
        for (const auto& [key, report] : health_)
            if (std::string part = report(); !part.empty()) body[key] = nlohmann::json::parse(part);
        return Response{.status = ok ? 200 : 503, .content_type = "application/json", .body = body.dump(), .headers = {}};
    }
    for (const auto& p : parts_) {
        if (!p.owns(seg)) continue;
        try {
            return p.handle(r);
        } catch (const std::exception& e) {
            warn_(fmt::format("{} {} ({}): {}", r.method, r.path, p.name, e.what()));
            return error_response(500, "internal error");
        }
    }
    return error_response(404, "not found");
}

}  // namespace wgf::serve
