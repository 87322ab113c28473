#include "cli/output.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace wgf::output {
namespace {

constexpr std::string_view kFormats[] = {"text", "json", "github", "gitlab", "prometheus"};

const char* level_word(Finding::Level l) {
    switch (l) {
        case Finding::Level::error: return "error";
        case Finding::Level::warning: return "warning";
        case Finding::Level::notice: return "notice";
    }
    return "error";
}

// GitLab's scale is info, minor, major, critical, blocker. A config error blocks every node's
// apply, but nothing is broken yet: major, so it ranks above warnings without claiming an outage.
const char* gitlab_severity(Finding::Level l) {
    switch (l) {
        case Finding::Level::error: return "major";
        case Finding::Level::warning: return "minor";
        case Finding::Level::notice: return "info";
    }
    return "major";
}

std::string fingerprint(std::string_view file, std::string_view path, std::string_view message) {
    // Fields separated by NUL, which none of them holds, so ("a", "bc") and ("ab", "c") differ.
    std::string input;
    input.reserve(file.size() + path.size() + message.size() + 2);
    input.append(file).push_back('\0');
    input.append(path).push_back('\0');
    input.append(message);
    unsigned char hash[16];
    crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(input.data()), input.size(), nullptr, 0);
    std::string hex;
    for (unsigned char b : hash) hex += fmt::format("{:02x}", b);
    return hex;
}

}  // namespace

std::optional<Format> parse_format(std::string_view name) {
    for (size_t i = 0; i < std::size(kFormats); ++i)
        if (kFormats[i] == name) return static_cast<Format>(i);
    return std::nullopt;
}

std::string_view to_string(Format f) { return kFormats[static_cast<size_t>(f)]; }

std::vector<Finding> findings_of(const config::Diagnostics& diags, const config::Sources& sources) {
    std::vector<Finding> out;
    for (const auto& d : diags.sorted()) {
        Finding f{.level = d.severity == config::Severity::error ? Finding::Level::error : Finding::Level::warning,
                  .file = d.loc.known() ? sources.name(d.loc.file) : std::string(),
                  .line = d.loc.known() ? d.loc.line : 0,
                  .column = d.loc.known() ? d.loc.col : 0,
                  .path = d.path,
                  .check = "wg-fleet/config",
                  .title = d.path.empty() ? "wg-fleet check" : d.path,
                  .message = d.message};
        out.push_back(std::move(f));
    }
    return out;
}

std::string findings_json(const std::vector<Finding>& findings) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    auto number = [](uint32_t n) { return n ? nlohmann::ordered_json(n) : nlohmann::ordered_json(nullptr); };
    for (const auto& f : findings)
        list.push_back({{"file", f.file.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.file)},
                        {"line", number(f.line)},
                        {"column", number(f.line ? f.column : 0)},
                        {"path", f.path},
                        {"severity", f.level == Finding::Level::error ? "error" : "warning"},
                        {"message", f.message}});
    nlohmann::ordered_json out{{"version", 1}, {"diagnostics", std::move(list)}};
    return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string diagnostics_json(const config::Diagnostics& diags, const config::Sources& sources) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& d : diags.sorted()) {
        const bool at = d.loc.known();
        auto number = [&](uint32_t n) { return at && n ? nlohmann::ordered_json(n) : nlohmann::ordered_json(nullptr); };
        list.push_back({{"file", at ? nlohmann::ordered_json(sources.name(d.loc.file)) : nlohmann::ordered_json(nullptr)},
                        {"line", number(d.loc.line)},
                        {"column", number(d.loc.col)},
                        {"path", d.path},
                        {"severity", d.severity == config::Severity::error ? "error" : "warning"},
                        {"message", d.message}});
    }
    nlohmann::ordered_json out{{"version", 1}, {"diagnostics", std::move(list)}};
    // Invalid UTF-8 in a message (a quoted value of a broken file) is replaced, not fatal.
    return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string diagnostics_json(const config::Diagnostics& diags, const config::Sources& sources, const std::vector<std::string>& errors) {
    config::Diagnostics all = diags;
    for (const auto& e : errors) all.error(config::Loc{}, "", e);
    return diagnostics_json(all, sources);
}

std::string ci_path(std::string_view file, std::string_view root, std::string_view cwd) {
    namespace fs = std::filesystem;
    if (root.empty() || file.empty()) return std::string(file);
    fs::path f(file);
    if (f.is_relative()) f = fs::path(cwd) / f;
    f = f.lexically_normal();
    fs::path r = fs::path(root).lexically_normal();
    if (r.is_relative()) r = (fs::path(cwd) / r).lexically_normal();
    fs::path rel = f.lexically_relative(r);
    if (rel.empty() || *rel.begin() == ".." || rel == ".") return std::string(file);
    return rel.string();
}

std::string github_escape_data(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '%') out += "%25";
        else if (c == '\r') out += "%0D";
        else if (c == '\n') out += "%0A";
        else out += c;
    }
    return out;
}

std::string github_escape_property(std::string_view s) {
    std::string out;
    for (char c : github_escape_data(s)) {
        if (c == ':') out += "%3A";
        else if (c == ',') out += "%2C";
        else out += c;
    }
    return out;
}

std::string github_annotations(const std::vector<Finding>& findings, std::string_view workspace, std::string_view cwd) {
    std::string out;
    for (const auto& f : findings) {
        std::string props;
        auto prop = [&](std::string_view key, std::string_view value) {
            props += props.empty() ? " " : ",";
            props += key;
            props += '=';
            props += github_escape_property(value);
        };
        if (!f.file.empty()) {
            prop("file", ci_path(f.file, workspace, cwd));
            if (f.line) prop("line", std::to_string(f.line));
            if (f.line && f.column) prop("col", std::to_string(f.column));
        }
        if (!f.title.empty()) prop("title", f.title);
        out += fmt::format("::{}{}::{}\n", level_word(f.level), props, github_escape_data(f.message));
    }
    return out;
}

std::string gitlab_report(const std::vector<Finding>& findings, std::string_view fallback_file, std::string_view project_dir,
                          std::string_view cwd) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& f : findings) {
        const std::string path = ci_path(f.file.empty() ? fallback_file : std::string_view(f.file), project_dir, cwd);
        const std::string description = f.path.empty() ? f.message : f.path + ": " + f.message;
        out.push_back({{"description", description},
                       {"check_name", f.check},
                       {"fingerprint", fingerprint(path, f.path, f.message)},
                       {"severity", gitlab_severity(f.level)},
                       {"location", {{"path", path}, {"lines", {{"begin", f.line ? f.line : 1}}}}}});
    }
    return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string prometheus_label_value(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

namespace {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// One metric family: HELP and TYPE once, then its samples.
class Family {
public:
    Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) : out_(out), name_(name) {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    template <class V>
    void sample(const Labels& labels, V value) {
        std::string ls;
        for (const auto& [k, v] : labels) ls += fmt::format("{}{}=\"{}\"", ls.empty() ? "" : ",", k, prometheus_label_value(v));
        out_ += fmt::format("{}{{{}}} {}\n", name_, ls, value);
    }

private:
    std::string& out_;
    std::string name_;
};

Labels peer_labels(const PeerMetrics& p) {
    return {{"fleet", p.fleet}, {"interface", p.interface}, {"peer", p.name}, {"public_key", p.public_key}};
}

}  // namespace

std::string prometheus_text(const NodeMetrics& m) {
    std::string out;
    {
        Family up(out, "wgfleet_interface_up", "gauge",
                  "Whether the fleet's WireGuard interface on this node exists and is up (1) or not (0).");
        for (const auto& i : m.interfaces) up.sample({{"node", m.node}, {"fleet", i.fleet}, {"interface", i.interface}}, i.up ? 1 : 0);
    }
    // A pending member has no session: only its health.
    auto per_session = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
        Family f(out, name, type, help);
        for (const auto& p : m.peers)
            if (p.health != plan::Health::pending) f.sample(peer_labels(p), value(p));
    };
    per_session("wgfleet_peer_last_handshake_timestamp_seconds", "gauge",
                "Time of the peer's latest completed handshake, in seconds since the epoch; 0 if none yet.",
                [](const PeerMetrics& p) { return p.last_handshake; });
    per_session("wgfleet_peer_receive_bytes_total", "counter", "Bytes received from the peer since its device was configured.",
                [](const PeerMetrics& p) { return p.rx_bytes; });
    per_session("wgfleet_peer_transmit_bytes_total", "counter", "Bytes sent to the peer since its device was configured.",
                [](const PeerMetrics& p) { return p.tx_bytes; });
    {
        Family health(out, "wgfleet_peer_health", "gauge",
                      "The peer's health verdict, one-hot over state: ok (handshake at most 180 s ago), stale (older, keepalive set), "
                      "idle (older, no keepalive), never (no handshake yet), pending (no public key yet).");
        for (const auto& p : m.peers)
            for (plan::Health h : plan::kHealthStates) {
                Labels labels = peer_labels(p);
                labels.emplace_back("state", plan::to_string(h));
                health.sample(labels, h == p.health ? 1 : 0);
            }
    }
    Family(out, "wgfleet_drift_operations", "gauge", "Operations `wg-fleet apply` would run to make the node match the fleet.")
        .sample({{"node", m.node}}, m.drift_operations);
    Family(out, "wgfleet_conflicts", "gauge", "Managed paths wg-fleet will not touch because it did not write them.")
        .sample({{"node", m.node}}, m.conflicts);
    if (m.last_apply) {
        Family(out, "wgfleet_last_apply_timestamp_seconds", "gauge",
               "Time of the last operation an apply ran (journal.log), in seconds since the epoch.")
            .sample({{"node", m.node}}, m.last_apply->time);
        Family(out, "wgfleet_last_apply_success", "gauge",
               "Whether the last operation an apply ran (journal.log) succeeded (1) or failed (0).")
            .sample({{"node", m.node}}, m.last_apply->ok ? 1 : 0);
    }
    return out;
}

bool healthy(plan::Health h) { return h == plan::Health::ok || h == plan::Health::idle; }

StatusSummary summarize(const Status& s) {
    StatusSummary out;
    for (const auto& i : s.interfaces) {
        out.peers += i.peers.size();
        for (const auto& p : i.peers) out.healthy += healthy(p.health);
        out.pending += i.pending.size();
    }
    out.ok = out.healthy == out.peers && s.drift.empty() && s.conflicts.empty();
    return out;
}

std::string human_bytes(uint64_t n) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) return fmt::format("{} B", n);
    double v = static_cast<double>(n);
    size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
    return v < 10 ? fmt::format("{:.1f} {}", v, kUnits[u]) : fmt::format("{:.0f} {}", v, kUnits[u]);
}

std::string human_ago(int64_t now, int64_t t) {
    if (t <= 0) return "never";
    const int64_t d = now - t;
    if (d < 0) return "just now";
    if (d < 120) return fmt::format("{} s ago", d);
    if (d < 7200) return fmt::format("{} min ago", d / 60);
    if (d < 2 * 86400) return fmt::format("{} h ago", d / 3600);
    return fmt::format("{} days ago", d / 86400);
}

namespace {

std::string allowed_ips_cell(const std::vector<std::string>& ips) {
    constexpr size_t kShown = 2;
    std::string out;
    for (size_t i = 0; i < ips.size() && i < kShown; ++i) out += (i ? "," : "") + ips[i];
    if (ips.size() > kShown) out += fmt::format(" +{}", ips.size() - kShown);
    return out.empty() ? "-" : out;
}

std::string plural(size_t n, const char* one, const char* many) { return fmt::format("{} {}", n, n == 1 ? one : many); }

}  // namespace

std::string status_text(const Status& s, int64_t now) {
    std::string out;
    for (const auto& i : s.interfaces) {
        out += fmt::format("interface {} (fleet {}): {}{}{}\n", i.interface, i.fleet, i.up ? "up" : "down",
                           i.listen_port ? fmt::format(", listening on {}", *i.listen_port) : "",
                           i.key_changed ? fmt::format("; key from {}", human_ago(now, *i.key_changed)) : "");
        std::vector<std::array<std::string, 7>> rows{{"PEER", "HEALTH", "ALLOWED IPS", "ENDPOINT", "KEEPALIVE", "HANDSHAKE", "TRANSFER"}};
        for (const auto& p : i.peers)
            rows.push_back({p.name, std::string(plan::to_string(p.health)), allowed_ips_cell(p.allowed_ips), p.endpoint.value_or("-"),
                            p.keepalive ? fmt::format("{} s", p.keepalive) : "-", human_ago(now, p.last_handshake),
                            fmt::format("rx {}, tx {}{}", human_bytes(p.rx_bytes), human_bytes(p.tx_bytes),
                                        p.configured ? "" : " (not configured yet)")});
        if (rows.size() > 1) {
            std::array<size_t, 7> width{};
            for (const auto& r : rows)
                for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
            for (const auto& r : rows) {
                std::string line;
                for (size_t c = 0; c < r.size(); ++c)
                    line += "  " + (c + 1 == r.size() ? r[c] : r[c] + std::string(width[c] - r[c].size(), ' '));
                out += line + "\n";
            }
        }
        for (const auto& p : i.pending) out += fmt::format("  {} pending: no public key yet\n", p);
    }
    for (const auto& f : s.foreign) out += "foreign peer: " + f + "\n";
    for (const auto& c : s.conflicts) out += c + "\n";
    if (!s.drift.empty()) {
        out += fmt::format("drift ({} would converge it):\n", plural(s.drift.size(), "operation", "operations"));
        for (const auto& d : s.drift) out += "  " + d + "\n";
    }
    const StatusSummary sum = summarize(s);
    out += fmt::format("{} of {} healthy", sum.healthy, plural(sum.peers, "peer", "peers"));
    if (sum.pending) out += fmt::format(" ({} pending)", sum.pending);
    out += s.drift.empty() ? "; drift: none" : fmt::format("; drift: {}", plural(s.drift.size(), "operation", "operations"));
    if (!s.conflicts.empty())
        out += fmt::format("; {} keep{} the node from matching the fleet", plural(s.conflicts.size(), "conflict", "conflicts"),
                           s.conflicts.size() == 1 ? "s" : "");
    return out + "\n";
}

}  // namespace wgf::output
