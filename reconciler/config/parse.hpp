// Parsing: YAML text -> tree -> typed Config. No I/O here (text and file names come in), so the
// parser can be fuzzed. Structural problems (unknown keys, wrong types, malformed values) are
// reported by this pass; cross references are checked by validate().
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diag.hpp"
#include "config/read.hpp"
#include "config/tree.hpp"
#include "model/spec.hpp"

namespace wgf::config {

// A parsed configuration: the typed model plus the tree it came from (to locate later diagnostics).
struct Parsed {
    model::Config config;
    Node tree;
};

// Parses the main file and drop-ins (already in name order) into one configuration.
// Diagnostics are appended to `diags`; on errors the returned config is partial.
Parsed parse(const std::vector<SourceFile>& files, Sources& sources, Diagnostics& diags);

// The typed configuration of a tree (parsed and merged): the second half of parse().
Parsed parse_tree(Node tree, Diagnostics& diags);

// Every key the parser accepts, as a YAML path from the document root: `*` stands for any name
// in a map of names (a fleet, a node), `[]` for any item of a list
// ("fleets.*.peers.*.public_key", "forwards[].to_port"). Listed from the parser's own key tables,
// so the man page and schema tests cannot miss a key.
std::vector<std::string> accepted_keys();

// Convenience for one document.
Parsed parse_text(std::string_view text, std::string_view file_name, Sources& sources, Diagnostics& diags);

}  // namespace wgf::config
