#include "serve/agent.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "model/host_state.hpp"
#include "model/net.hpp"

namespace wgf::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Field readers: each returns an error message naming the field, or "" when it was read.
std::string read_string(const json& j, const char* key, std::string& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return required ? fmt::format("{}: required", key) : "";
    if (!it->is_string()) return fmt::format("{}: expected a string, got {}", key, it->dump());
    out = it->get<std::string>();
    if (required && out.empty()) return fmt::format("{}: must not be empty", key);
    return "";
}

// An integer port, also written as a string of digits (the agent's FastAPI models coerced those).
std::string read_port(const json& j, const char* key, uint16_t& out, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return required ? fmt::format("{}: required", key) : "";
    long long v = -1;
    if (it->is_number_integer()) v = it->get<long long>();
    else if (it->is_string()) {
        const std::string s = it->get<std::string>();
        if (!s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
            v = std::stoll(s);
    }
    if (v < 1 || v > 65535) return fmt::format("{}: expected a port 1..65535, got {}", key, it->dump());
    out = static_cast<uint16_t>(v);
    return "";
}

std::variant<AgentRoute, std::string> route_from(const json& j) {
    if (!j.is_object()) return std::string("expected a JSON object");
    AgentRoute r;
    std::optional<std::string> cr;
    std::string certresolver;
    for (const std::string& e : {read_string(j, "route_id", r.route_id, true), read_string(j, "hostname", r.hostname, true),
                                 read_string(j, "target_url", r.target_url, true), read_string(j, "entrypoint", r.entrypoint, false),
                                 read_string(j, "certresolver", certresolver, false)})
        if (!e.empty()) return e;
    if (r.entrypoint.empty()) r.entrypoint = "websecure";
    if (!certresolver.empty()) r.certresolver = certresolver;
    return r;
}

std::variant<AgentForward, std::string> forward_from(const json& j) {
    if (!j.is_object()) return std::string("expected a JSON object");
    AgentForward f;
    for (const std::string& e : {read_string(j, "forward_id", f.forward_id, true), read_port(j, "public_port", f.public_port, true),
                                 read_string(j, "target_ip", f.target_ip, true), read_port(j, "target_port", f.target_port, false),
                                 read_string(j, "proto", f.proto, false)})
        if (!e.empty()) return e;
    if (!f.target_port) f.target_port = f.public_port;
    std::transform(f.proto.begin(), f.proto.end(), f.proto.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (f.proto.empty()) f.proto = "tcp";
    if (f.proto != "tcp" && f.proto != "udp") return fmt::format("proto: expected \"tcp\" or \"udp\", got {}", json(f.proto).dump());
    if (!model::IpAddr::parse(f.target_ip))
        return fmt::format("target_ip: expected an IPv4 or IPv6 address, got {}", json(f.target_ip).dump());
    return f;
}

json route_json(const AgentRoute& r) {
    json j{{"route_id", r.route_id}, {"hostname", r.hostname}, {"target_url", r.target_url}, {"entrypoint", r.entrypoint}};
    j["certresolver"] = r.certresolver ? json(*r.certresolver) : json(nullptr);
    return j;
}

json forward_json(const AgentForward& f) {
    return json{{"forward_id", f.forward_id},
                {"public_port", f.public_port},
                {"target_ip", f.target_ip},
                {"target_port", f.target_port},
                {"proto", f.proto}};
}

// A YAML double-quoted scalar: whatever a request sends stays one string value.
std::string yq(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
        else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
    return out + "\"";
}

template <class T, class Id>
bool upsert(std::vector<T>& list, const T& item, Id id) {
    for (auto& x : list)
        if (x.*id == item.*id) {
            x = item;
            return true;
        }
    list.push_back(item);
    return false;
}

template <class T, class Id>
bool erase(std::vector<T>& list, const std::string& key, Id id) {
    auto it = std::find_if(list.begin(), list.end(), [&](const T& x) { return x.*id == key; });
    if (it == list.end()) return false;
    list.erase(it);
    return true;
}

std::string errno_text(int e) { return fmt::format("{} ({})", std::strerror(e), e); }

// A temporary directory removed with everything in it when this goes out of scope.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "wgf-agent.XXXXXX").string();
        if (mkdtemp(tmpl.data())) path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// Writes `content` to `path` through a new file beside it and a rename: readers see the old file
// or the new one, never a part.
std::string write_atomic(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return fmt::format("create {}: {}", tmp, errno_text(errno));
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return fmt::format("write {}: {}", tmp, errno_text(e));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return fmt::format("write {}: {}", tmp, errno_text(e));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return fmt::format("rename {} to {}: {}", tmp, path, errno_text(e));
    }
    return "";
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
}

}  // namespace

std::variant<AgentRoute, std::string> route_from_json(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return std::string("the body is not valid JSON");
    return route_from(j);
}

std::variant<AgentForward, std::string> forward_from_json(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return std::string("the body is not valid JSON");
    return forward_from(j);
}

std::string route_to_json(const AgentRoute& r) { return route_json(r).dump(); }
std::string forward_to_json(const AgentForward& f) { return forward_json(f).dump(); }

std::string routes_to_json(const std::vector<AgentRoute>& routes) {
    json a = json::array();
    for (const auto& r : routes) a.push_back(route_json(r));
    return a.dump();
}

std::string forwards_to_json(const std::vector<AgentForward>& forwards) {
    json a = json::array();
    for (const auto& f : forwards) a.push_back(forward_json(f));
    return a.dump();
}

std::string render_dropin(const AgentEntries& entries, const std::string& node) {
    std::string out = std::string(model::kFileMarker) + "\n";
    out += "# The edge agent API's HTTP routes and forwards (wg-fleet serve); change them through the API.\n";
    out += entries.routes.empty() ? "http_routes: []\n" : "http_routes:\n";
    for (const auto& r : entries.routes) {
        out += fmt::format("  - name: {}\n    node: {}\n    host: {}\n    to: {}\n    entrypoint: {}\n", yq(r.route_id), yq(node),
                           yq(r.hostname), yq(r.target_url), yq(r.entrypoint));
        if (r.certresolver) out += fmt::format("    certresolver: {}\n", yq(*r.certresolver));
    }
    out += entries.forwards.empty() ? "forwards: []\n" : "forwards:\n";
    for (const auto& f : entries.forwards)
        out += fmt::format("  - name: {}\n    node: {}\n    proto: {}\n    port: {}\n    to: {}\n    to_port: {}\n", yq(f.forward_id),
                           yq(node), yq(f.proto), f.public_port, yq(f.target_ip), f.target_port);
    return out;
}

std::variant<AgentEntries, std::string> parse_dropin(std::string_view text, const std::string& file_name) {
    if (text.substr(0, std::string_view(model::kFileMarker).size()) != model::kFileMarker)
        return fmt::format("{} does not start with wg-fleet's marker line: not ours to change", file_name);
    config::Sources sources;
    config::Diagnostics diags;
    auto parsed = config::parse_text(text, file_name, sources, diags);
    if (diags.has_errors()) return config::render_all(diags, sources, false);
    AgentEntries out;
    for (const auto& r : parsed.config.http_routes)
        out.routes.push_back(
            {.route_id = r.name, .hostname = r.host, .target_url = r.to, .entrypoint = r.entrypoint, .certresolver = r.certresolver});
    for (const auto& f : parsed.config.forwards)
        out.forwards.push_back(
            {.forward_id = f.name, .public_port = f.port, .target_ip = f.to, .target_port = f.to_port, .proto = model::to_string(f.proto)});
    return out;
}

std::variant<AgentEntries, std::string> entries_from_state_json(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return std::string("not valid JSON");
    if (!j.is_object()) return std::string("expected a JSON object with routes and forwards");
    AgentEntries out;
    // Each section is a list of request bodies or an object from id to body.
    auto section = [&](std::initializer_list<const char*> names, const char* id_key, auto&& add) -> std::string {
        for (const char* name : names) {
            auto it = j.find(name);
            if (it == j.end() || it->is_null()) continue;
            if (it->is_array()) {
                for (const auto& body : *it)
                    if (auto e = add(body); !e.empty()) return fmt::format("{}: {}", name, e);
            } else if (it->is_object()) {
                for (const auto& [id, body] : it->items()) {
                    json b = body;
                    if (b.is_object() && !b.contains(id_key)) b[id_key] = id;
                    if (auto e = add(b); !e.empty()) return fmt::format("{}.{}: {}", name, id, e);
                }
            } else {
                return fmt::format("{}: expected a list or an object", name);
            }
        }
        return "";
    };
    std::string e = section({"routes", "http_routes", "http"}, "route_id", [&](const json& b) -> std::string {
        auto r = route_from(b);
        if (auto* err = std::get_if<std::string>(&r)) return *err;
        upsert(out.routes, std::get<AgentRoute>(r), &AgentRoute::route_id);
        return "";
    });
    if (!e.empty()) return e;
    e = section({"forwards", "tcp_forwards", "tcp"}, "forward_id", [&](const json& b) -> std::string {
        auto f = forward_from(b);
        if (auto* err = std::get_if<std::string>(&f)) return *err;
        upsert(out.forwards, std::get<AgentForward>(f), &AgentForward::forward_id);
        return "";
    });
    if (!e.empty()) return e;
    return out;
}

EdgeAgent::EdgeAgent(AgentOptions o) : o_(std::move(o)) {
    dir_ = o_.load.dropin_dir ? *o_.load.dropin_dir : config::default_dropin_dir(o_.load.config);
    path_ = (fs::path(dir_) / o_.file_name).string();
}

std::variant<AgentEntries, std::string> EdgeAgent::entries() const {
    std::error_code ec;
    if (fs::symlink_status(path_, ec).type() == fs::file_type::not_found) return AgentEntries{};
    std::ifstream in(path_, std::ios::binary);
    if (!in) return fmt::format("read {}: {}", path_, errno_text(errno));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_dropin(text.str(), path_);
}

AgentResult EdgeAgent::commit(const AgentEntries& next) {
    const std::string text = render_dropin(next, o_.node);
    // The whole configuration, with the candidate in place of the drop-in: the other drop-ins
    // are links to themselves, so they read exactly as a load of the real directory reads them.
    TempDir tmp;
    if (tmp.path().empty())
        return {.status = AgentResult::Status::error, .message = "cannot create a temporary directory: " + errno_text(errno)};
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name == o_.file_name) continue;
        fs::create_symlink(fs::absolute(it->path()), fs::path(tmp.path()) / name, ec);
        if (ec) return {.status = AgentResult::Status::error, .message = fmt::format("link {}: {}", it->path().string(), ec.message())};
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
        return {.status = AgentResult::Status::error, .message = fmt::format("list {}: {}", dir_, ec.message())};
    if (auto e = write_atomic((fs::path(tmp.path()) / o_.file_name).string(), text); !e.empty())
        return {.status = AgentResult::Status::error, .message = e};
    inputs::LoadOptions lo = o_.load;
    lo.dropin_dir = tmp.path();
    auto loaded = inputs::load(lo);
    if (!loaded->fleet) {
        std::string diags = config::render_all(loaded->diags, loaded->sources, false);
        replace_all(diags, tmp.path(), dir_);
        return {.status = AgentResult::Status::invalid, .message = diags};
    }
    fs::create_directories(dir_, ec);
    if (ec) return {.status = AgentResult::Status::error, .message = fmt::format("create {}: {}", dir_, ec.message())};
    if (auto e = write_atomic(path_, text); !e.empty()) return {.status = AgentResult::Status::error, .message = e};
    return {};
}

AgentResult EdgeAgent::add_route(const AgentRoute& r) { return import({.routes = {r}, .forwards = {}}); }

AgentResult EdgeAgent::add_forward(const AgentForward& f) { return import({.routes = {}, .forwards = {f}}); }

AgentResult EdgeAgent::import(const AgentEntries& add) {
    std::lock_guard lock(mu_);
    auto now = entries();
    if (auto* e = std::get_if<std::string>(&now)) return {.status = AgentResult::Status::error, .message = *e};
    AgentEntries next = std::get<AgentEntries>(now);
    bool replaced = false;
    for (const auto& r : add.routes) replaced = upsert(next.routes, r, &AgentRoute::route_id) || replaced;
    for (const auto& f : add.forwards) replaced = upsert(next.forwards, f, &AgentForward::forward_id) || replaced;
    AgentResult res = commit(next);
    res.replaced = replaced && res.status == AgentResult::Status::ok;
    return res;
}

AgentResult EdgeAgent::delete_route(const std::string& route_id) {
    std::lock_guard lock(mu_);
    auto now = entries();
    if (auto* e = std::get_if<std::string>(&now)) return {.status = AgentResult::Status::error, .message = *e};
    AgentEntries next = std::get<AgentEntries>(now);
    if (!erase(next.routes, route_id, &AgentRoute::route_id))
        return {.status = AgentResult::Status::not_found, .message = fmt::format("no route {}", config::quote(route_id))};
    return commit(next);
}

AgentResult EdgeAgent::delete_forward(const std::string& forward_id) {
    std::lock_guard lock(mu_);
    auto now = entries();
    if (auto* e = std::get_if<std::string>(&now)) return {.status = AgentResult::Status::error, .message = *e};
    AgentEntries next = std::get<AgentEntries>(now);
    if (!erase(next.forwards, forward_id, &AgentForward::forward_id))
        return {.status = AgentResult::Status::not_found, .message = fmt::format("no forward {}", config::quote(forward_id))};
    return commit(next);
}

AgentResult import_edge_state(EdgeAgent& agent, const std::string& state_file) {
    std::ifstream in(state_file, std::ios::binary);
    if (!in) return {.status = AgentResult::Status::error, .message = fmt::format("read {}: {}", state_file, errno_text(errno))};
    std::ostringstream text;
    text << in.rdbuf();
    auto entries = entries_from_state_json(text.str());
    if (auto* e = std::get_if<std::string>(&entries))
        return {.status = AgentResult::Status::invalid, .message = fmt::format("{}: {}", state_file, *e)};
    return agent.import(std::get<AgentEntries>(entries));
}

}  // namespace wgf::serve
