// The plan as an operator reads it (grouped by resource, each change old -> new, a managed file
// as a unified diff, coloured on a terminal) and as a program reads it (`plan --json`, version 1
// of its shape, documented in the README). Every command that prints a plan uses these two, so
// `plan`, `apply` and the sandbox's plan read alike. Pure: whether to colour is decided by the
// caller (color_enabled) from the terminal and the environment.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plan/diff.hpp"

namespace CLI {
class App;
}

namespace wgf::output {

// --color=WHEN. auto: colour when the output is a terminal, NO_COLOR is unset or empty and TERM
// is not "dumb"; always and never override NO_COLOR (an option given is the more specific wish).
enum class Color { auto_, never, always };
bool color_enabled(Color when, bool is_tty, const char* no_color, const char* term);
// --color=WHEN on `sub`, WHEN one of never, always, auto (the default).
// Defined with the command line (wiring.cpp), in wg-fleet's library, not in this one.
void add_color_option(CLI::App& sub, Color& when);

// The resource an operation acts on, the heading it is grouped under: "device", "peers",
// "addresses", "routes", "firewall", "sysctls" or "files".
const char* resource_of(const plan::Op& op);

struct PlanTextOptions {
    bool color = false;  // ANSI colours: + green, - red, ~ yellow
    bool notes = true;   // pending members, foreign and kept peers (off with -q)
};

// Each resource's heading, then its operations in the order apply runs them, one line each as
// plan::describe writes it (the line apply's log repeats), a managed file's unified diff under its
// line (a secret file's size instead); then conflicts, notes and the summary.
std::string plan_text(const plan::Plan& plan, const PlanTextOptions& opts = {});

// A line of apply's log (or any describe() line) with its leading mark coloured.
std::string mark_line(std::string_view line, bool color);

// plan --json, version 1: {"version": 1, "node", "ops": [...], "summary", "counts", "pending",
// "foreign", "kept", "conflicts", "warnings"}; each op has "kind", "mark", "disrupts", "line",
// "resource", "changes" ({field: {"old", "new"}}) and what it names (README, "plan --json").
// Returned as JSON text, indented by 2.
std::string plan_json(const std::string& node, const plan::Plan& plan, const std::vector<std::string>& warnings);

}  // namespace wgf::output
