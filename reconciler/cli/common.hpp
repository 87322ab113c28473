// What every command shares: global options, loading and validating the configuration, and
// printing diagnostics.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "model/timing.hpp"
#include "plan/render.hpp"

namespace wgf::cli {

struct Globals {
    std::string config = "/etc/wg-fleet.yaml";
    std::optional<std::string> dropin_dir;   // default: next to the config, NAME.d
    std::optional<std::string> node;         // default: the hostname
    std::optional<std::string> state_dir;    // overrides state_dir: in the YAML
    // Sandbox: public keys come only from this directory (<dir>/<fleet>/<node>.pub), replacing
    // the YAML's, because every sandbox node generates its own key.
    std::optional<std::string> keys_override;
    // Sandbox: prefix for every file wg-fleet writes (hosts file, HTTP route files).
    std::optional<std::string> files_root;
    int verbose = 0;
    int quiet = 0;
    // How long apply, keygen and each reconcile of watch wait for another run's lock on the
    // state directory before giving up.
    int lock_timeout = 30;
};

struct Loaded {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    std::unique_ptr<plan::Fleetwide> fleet;  // set when there are no errors
    model::Timings timings;                  // read+parse, validate

    const model::Config& cfg() const { return parsed.config; }
};

// Reads, parses, merges keys from keys_dir and validates. Diagnostics are printed to stderr
// (warnings only unless quiet is 0). Returns the result even on errors; check fleet != nullptr.
// `parsed`, when given, is called once the file has parsed without errors, before validation
// (a command starts reading the live state there).
std::unique_ptr<Loaded> load(const Globals& g, const std::function<void(const model::Config&)>& parsed = {});

std::string this_node(const Globals& g);

// Exit codes shared by all commands.
inline constexpr int kOk = 0;
inline constexpr int kError = 1;
inline constexpr int kChanges = 2;  // plan --detailed-exitcode: changes pending

}  // namespace wgf::cli
