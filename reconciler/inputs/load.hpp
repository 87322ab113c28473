// Loading a fleet for one run: read the file and its drop-ins, parse, apply the run's
// overrides, fill in published public keys from keys_dir, validate. Nothing is printed: the
// diagnostics come back for the caller to show once.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diag.hpp"
#include "config/parse.hpp"
#include "config/read.hpp"
#include "model/timing.hpp"
#include "plan/render.hpp"

namespace wgf::inputs {

struct LoadOptions {
    std::string config;
    std::optional<std::string> dropin_dir;  // default: next to the config, NAME.d
    std::optional<std::string> state_dir;   // overrides state_dir: in the file
    // Public keys come only from this directory (<dir>/<fleet>/<node>.pub), replacing the
    // file's: a sandbox, where every node generates its own key.
    std::optional<std::string> keys_only_from;
    // Prefix for every file wg-fleet writes (hosts file, HTTP route files): a sandbox.
    std::optional<std::string> files_root;
};

struct Loaded {
    config::Sources sources;
    std::vector<config::SourceFile> files;  // the bytes parsed: the file, then each drop-in
    config::Diagnostics diags;
    config::Parsed parsed;
    std::unique_ptr<plan::Fleetwide> fleet;  // set when there are no errors
    model::Timings timings;                  // read+parse, validate

    const model::Config& cfg() const { return parsed.config; }
};

// Returns the result even on errors; check fleet != nullptr. `parsed`, when given, is called once
// the file has parsed without errors, before validation (a command starts reading the live state
// there). `previous`, when given, is a load of the same options that passed (the configuration in
// force under `watch`): when the file alone changed, and only within a few entries, those are
// parsed again and the rest of its tree is taken over (config/reparse.hpp), leaving `previous`
// without a tree; its address plan and rendered hosts files are shared when the edit keeps their
// inputs (plan::Fleetwide); validation is always whole.
std::unique_ptr<Loaded> load(const LoadOptions& o, const std::function<void(const model::Config&)>& parsed = {},
                             Loaded* previous = nullptr);

}  // namespace wgf::inputs
