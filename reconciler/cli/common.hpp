// What every command shares: global options, loading and validating the configuration, and
// printing diagnostics.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "apply/engine.hpp"
#include "cli/output.hpp"
#include "inputs/load.hpp"

namespace wgf::cli {

struct Globals {
    std::string config = "/etc/wg-fleet.yaml";
    std::optional<std::string> dropin_dir;  // default: next to the config, NAME.d
    std::optional<std::string> node;        // default: the hostname
    std::optional<std::string> state_dir;   // overrides state_dir: in the YAML
    // Set only by the sandbox for its nodes (no command-line option): see inputs::LoadOptions.
    std::optional<std::string> keys_only_from;
    std::optional<std::string> files_root;
    int verbose = 0;
    int quiet = 0;
    // plan, apply, status: parse, validate and render even when the desired state of the last
    // verified apply is kept for inputs as they are now.
    bool no_cache = false;
    // How long apply, keygen and each reconcile of watch wait for another run's lock on the
    // state directory before giving up.
    int lock_timeout = 30;
    // Set only by the sandbox, which makes every key itself: no "pending" warnings.
    bool hide_pending = false;
};

// How this run prints the warnings about members without a key yet: one line, each with -v.
config::Pending pending_mode(const Globals& g);

using Loaded = inputs::Loaded;

// What apply::load needs from the global options.
inputs::LoadOptions load_options(const Globals& g);

// Loads the fleet (inputs::load) and prints its diagnostics to stderr (warnings only unless quiet
// is 0); with `findings`, also appends every diagnostic to it. Returns the result even on errors;
// check fleet != nullptr.
std::unique_ptr<Loaded> load(const Globals& g, const std::function<void(const model::Config&)>& parsed = {},
                             std::vector<output::Finding>* findings = nullptr);

// A command's findings in a CI format (github, gitlab) on stdout: paths relative to
// $GITHUB_WORKSPACE or $CI_PROJECT_DIR when set, the fleet file where a finding names no file.
void print_findings(const Globals& g, output::Format format, const std::vector<output::Finding>& findings);

std::string this_node(const Globals& g);

// "node 'x' is in no fleet of FILE; did you mean 'y'? (use --node NAME)".
std::string not_in_fleets(const plan::Fleetwide& fw, const std::string& node, const std::string& file);

// A one-shot command's large results (a node's 10,000 peers, desired and live) are not freed
// one map node at a time just before the process exits, which takes longer than their diff:
// the process's exit returns the whole heap at once. They stay reachable until then, so leak
// checkers see no leak. Only for what a command holds at its end, never in a loop.
// Replaces state_dir/last-run after an apply or a reconcile of watch (system/journal.hpp): ok
// when the run converged the node. A failure to write it is a warning, never the run's failure.
void record_last_run(const std::string& state_dir, int64_t time, const apply::RunResult& r);

void keep_until_exit(std::shared_ptr<void> value);
template <class T>
void keep_until_exit(T&& value) {
    keep_until_exit(std::shared_ptr<void>(std::make_shared<std::decay_t<T>>(std::forward<T>(value))));
}

// Exit codes shared by all commands.
inline constexpr int kOk = 0;
inline constexpr int kError = 1;
inline constexpr int kChanges = 2;  // plan --detailed-exitcode: changes pending

}  // namespace wgf::cli
