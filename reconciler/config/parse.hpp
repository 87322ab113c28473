// Parsing: YAML text -> tree -> typed Config. No I/O here (text and file names come in), so the
// parser can be fuzzed. Structural problems (unknown keys, wrong types, malformed values) are
// reported by this pass; cross references are checked by validate().
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diag.hpp"
#include "config/tree.hpp"
#include "model/spec.hpp"

namespace wgf::config {

// A parsed configuration: the typed model plus the tree it came from (to locate later diagnostics).
struct Parsed {
    model::Config config;
    Node tree;
};

struct SourceFile {
    std::string name;
    std::string text;
};

// Parses the main file and drop-ins (already in name order) into one configuration.
// Diagnostics are appended to `diags`; on errors the returned config is partial.
Parsed parse(const std::vector<SourceFile>& files, Sources& sources, Diagnostics& diags);

// Convenience for one document.
Parsed parse_text(std::string_view text, std::string_view file_name, Sources& sources, Diagnostics& diags);

// Reads the main file and its drop-in directory (*.yaml in name order). Missing drop-in dir is fine.
// A missing or unreadable main file is reported as a diagnostic.
std::vector<SourceFile> read_config_files(const std::string& main_file, const std::string& dropin_dir,
                                          Sources& sources, Diagnostics& diags);

// The default drop-in directory for a main file: /etc/wg-fleet.yaml -> /etc/wg-fleet.d
std::string default_dropin_dir(const std::string& main_file);

}  // namespace wgf::config
