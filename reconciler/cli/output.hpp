// The output formats of every command that prints results, in one place: which formats exist,
// the writers for CI systems (GitHub workflow annotations, GitLab Code Quality) and for
// Prometheus' node_exporter textfile collector, and the --format/--json options. The writers
// are pure: the environment (GITHUB_WORKSPACE, the working directory, the clock) comes in as
// arguments, so tests call them without the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diag.hpp"
#include "plan/health.hpp"

namespace CLI {
class App;
}

namespace wgf::output {

enum class Format { text, json, github, gitlab, prometheus };

std::optional<Format> parse_format(std::string_view name);
std::string_view to_string(Format f);

// One thing a CI system should show: a diagnostic of the fleet file, a pending change, a
// conflict, a failed operation. `file` empty: about no file in particular.
struct Finding {
    enum class Level { error, warning, notice };
    Level level = Level::error;
    std::string file{};   // as given on the command line or in a diagnostic
    uint32_t line = 0;    // 1-based; 0 = unknown
    uint32_t column = 0;  // 1-based; 0 = unknown
    std::string path{};   // the YAML path, if any
    std::string check{};  // what kind of finding: GitLab's check_name
    std::string title{};
    std::string message{};
};

// Every diagnostic (errors and warnings, in sorted order) as findings of check "wg-fleet/config".
std::vector<Finding> findings_of(const config::Diagnostics& diags, const config::Sources& sources);

// check --format json: {"version":1,"diagnostics":[{"file","line","column","path","severity",
// "message"}]}, every diagnostic in sorted order; an unknown file, line or column is null.
std::string diagnostics_json(const config::Diagnostics& diags, const config::Sources& sources);
// The same with a command's own errors after them (a node in no fleet, a lock held), about no
// file in particular: what every command prints on stdout in JSON when it fails.
std::string diagnostics_json(const config::Diagnostics& diags, const config::Sources& sources, const std::vector<std::string>& errors);
// The same shape from findings (a notice is a warning there), for commands that collect them.
std::string findings_json(const std::vector<Finding>& findings);

// `file` as a CI system wants it: relative to `root` (GITHUB_WORKSPACE, CI_PROJECT_DIR) when root
// is set and the file lies under it, else as given. A relative `file` is taken from `cwd`.
// Lexical: symbolic links are not followed.
std::string ci_path(std::string_view file, std::string_view root, std::string_view cwd);

// The escapes of GitHub's toolkit (@actions/core, command.ts): message data escapes % CR LF;
// property values also : and ,.
std::string github_escape_data(std::string_view s);
std::string github_escape_property(std::string_view s);

// One workflow command per finding: `::error file=F,line=L,col=C,title=T::MESSAGE` (warning,
// notice), with the properties that are known; `file` relative to `workspace` (see ci_path).
std::string github_annotations(const std::vector<Finding>& findings, std::string_view workspace, std::string_view cwd);

// GitLab Code Quality: a JSON array of {description, check_name, fingerprint, severity,
// location: {path, lines: {begin}}}. A finding without a file is placed on `fallback_file` (the
// fleet file), one without a line on line 1: GitLab needs both. Severity: error "major", warning
// "minor", notice "info". The fingerprint (BLAKE2b-128, hex) hashes the path GitLab sees, the
// YAML path and the message, so it survives unrelated edits that move the line.
std::string gitlab_report(const std::vector<Finding>& findings, std::string_view fallback_file, std::string_view project_dir,
                          std::string_view cwd);

// What `status --format prometheus` reports about one node.
struct PeerMetrics {
    std::string fleet{}, interface {
    }, name{}, public_key{};     // public_key empty for a pending member
    int64_t last_handshake = 0;  // seconds since the epoch; 0 = never
    uint64_t rx_bytes = 0, tx_bytes = 0;
    plan::Health health = plan::Health::never;
};
struct InterfaceMetrics {
    std::string fleet{}, interface {};
    bool up = false;
};
struct LastApply {
    int64_t time = 0;  // seconds since the epoch
    bool ok = false;
};
struct NodeMetrics {
    std::string node{};
    std::vector<InterfaceMetrics> interfaces{};
    std::vector<PeerMetrics> peers{};
    size_t drift_operations = 0;
    size_t conflicts = 0;
    std::optional<LastApply> last_apply{};  // none when the journal holds no record
};

// The Prometheus text exposition format (0.0.4), as node_exporter's textfile collector reads it:
// HELP and TYPE before each family, label values escaped (\\ \" \n).
std::string prometheus_text(const NodeMetrics& m);
std::string prometheus_label_value(std::string_view s);

// What `status` reports, built once and printed as text or JSON, so both carry the same facts.
struct StatusPeer {
    std::string name{};
    std::string public_key{};
    std::vector<std::string> allowed_ips{};  // as the fleet wants them
    std::optional<std::string> endpoint{};   // as the device has it (roaming peers change it)
    uint16_t keepalive = 0;                  // the persistent keepalive the fleet wants; 0 none
    int64_t last_handshake = 0;              // seconds since the epoch; 0 never
    uint64_t rx_bytes = 0;
    uint64_t tx_bytes = 0;
    plan::Health health = plan::Health::never;
    bool configured = true;  // on the device yet
};

struct StatusInterface {
    std::string interface {};
    std::string fleet{};
    bool up = false;
    std::optional<uint16_t> listen_port{};
    std::vector<StatusPeer> peers{};       // by name
    std::vector<std::string> pending{};    // members without a public key yet
    std::optional<int64_t> key_changed{};  // when this node's key file was last written (its key's age)
};

struct Status {
    std::string node{};
    std::vector<StatusInterface> interfaces{};
    std::vector<std::string> drift{};  // the operations that would converge the node
    std::vector<std::string> foreign{};
    std::vector<std::string> conflicts{};
};

// A peer is healthy when its verdict is ok or idle (no keepalive, nothing sent lately); stale
// and never are not. The node is healthy when every peer is, and it has no drift or conflict.
bool healthy(plan::Health h);
struct StatusSummary {
    size_t peers = 0;
    size_t healthy = 0;
    size_t pending = 0;
    bool ok = true;
};
StatusSummary summarize(const Status& s);

// "340 B", "1.2 KiB", "3.4 MiB": binary units, one decimal below 10.
std::string human_bytes(uint64_t n);
// "never", "12 s ago", "2 min ago", "3 h ago", "4 days ago" (a time ahead of now is "just now").
std::string human_ago(int64_t now, int64_t t);

// The text of `status`: per interface a table of its peers (name, health, allowed IPs,
// endpoint, keepalive, latest handshake, transfer), pending members, foreign peers and
// conflicts, the drift, and a last line such as "3 of 4 peers healthy; drift: none".
std::string status_text(const Status& s, int64_t now);

// --format FORMAT and --json (the same as --format json; the two exclude each other) on `sub`.
// `prometheus` is accepted only where `prometheus_ok`; anything else unknown is a usage error.
// Defined with the command line (wiring.cpp), in wg-fleet's library, not in this one.
void add_format_option(CLI::App& sub, Format& format, bool prometheus_ok = false);

}  // namespace wgf::output
