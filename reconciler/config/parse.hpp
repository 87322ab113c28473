// Parsing: YAML text -> tree -> typed Config. No I/O here (text and file names come in), so the
// parser can be fuzzed. Structural problems (unknown keys, wrong types, malformed values) are
// reported by this pass; cross references are checked by validate().
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/diag.hpp"
#include "config/read.hpp"
#include "config/tree.hpp"
#include "model/spec.hpp"

namespace wgf::config {

// The parts of a configuration its parse could not read: the YAML path of every error (and of the
// key a misspelt one probably meant), and the names of the nodes of fleets and members it left
// out. Validation skips what depends on them, so that a file with structural and cross-reference
// errors reports both in one run, each once, without errors about the defaults that stand in
// for the values it could not read.
class Broken {
public:
    void add(std::string path) { paths_.insert(std::move(path)); }
    void add_node(std::string name) { nodes_.insert(std::move(name)); }
    // Whether `path`, or a part that holds it, could not be read ("" is the whole document).
    bool hit(std::string_view path) const;
    // Whether `path` itself was marked (not a part that holds it).
    bool at(std::string_view path) const { return paths_.count(path) > 0; }
    // The same, or a part inside `path` could not be read.
    bool touches(std::string_view path) const;
    // Whether a node of this name was left out with its fleet or its member entry.
    bool left_out(std::string_view node) const { return nodes_.count(node) > 0; }
    bool empty() const { return paths_.empty() && nodes_.empty(); }

private:
    std::set<std::string, std::less<>> paths_;
    std::set<std::string, std::less<>> nodes_;
};

// A parsed configuration: the typed model plus the tree it came from (to locate later diagnostics).
struct Parsed {
    model::Config config;
    Node tree;
    Broken broken{};  // empty when the parse found no error
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
