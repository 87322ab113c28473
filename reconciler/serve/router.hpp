// serve's HTTP API is made of parts: the enrollment API (api.hpp), the Headscale source's read
// side and the edge agent API. Each part owns some paths; the router hands a request to the
// first part that owns its path, answers GET /health itself (every upstream service has one; a
// part may add its own state to it), and 404 for a path nobody owns. A part that throws gets a
// 500 and a log line: whatever it was writing rolled back (every writer here is transactional),
// so nothing changed.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/api.hpp"

namespace wgf::serve {

// "/a/b/" -> {"a", "b"}: empty segments dropped.
std::vector<std::string> path_segments(std::string_view path);

// A JSON body {"detail": ...}, the shape of every error answer of the upstream services.
Response error_response(int status, const std::string& detail);

struct Part {
    std::string name;                                               // for log lines
    std::function<bool(const std::vector<std::string>& seg)> owns;  // the path's segments
    std::function<Response(const Request&)> handle;
};

class Router {
public:
    using Log = std::function<void(const std::string&)>;
    // `ready`: whether serve can answer yet (the first converge finished); /health says so.
    Router(std::function<bool()> ready, Log warn);

    void add(Part p);
    // A part's state in GET /health: `report` returns a JSON value put under `key` beside
    // "status", or "" for nothing.
    void add_health(std::string key, std::function<std::string()> report);
    Response handle(const Request& r) const;

private:
    std::function<bool()> ready_;
    Log warn_;
    std::vector<Part> parts_;
    std::vector<std::pair<std::string, std::function<std::string()>>> health_;
};

}  // namespace wgf::serve
