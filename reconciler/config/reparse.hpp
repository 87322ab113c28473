// Parsing an edited YAML document again by its edited part. `watch` loads the fleet file again on
// every edit, and a change to one peer of a 10,000-peer file need not tokenize the other peers.
// The result is exactly the tree parse_yaml() builds from the new text, locations included, or
// nothing when this edit is not one whose part parses on its own to the same result; the caller
// then parses the whole text. Every doubt answers "nothing".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "config/tree.hpp"

namespace wgf::config {

// `old_tree` is what parse_yaml(old_text, file) built without any diagnostic. The edit is taken
// when the lines that differ lie within consecutive entries of one block mapping (one peer, one
// setting of it, a few peers, a top-level key) and those lines, parsed alone, are again entries
// of that mapping at its indentation: they replace the old entries, and every location after them
// moves by the lines added or removed. Not taken (nothing): anchors, aliases, tags, block
// scalars, flow collections around the edit, line breaks other than LF, a byte order mark, keys
// the edit would duplicate, and an edited part larger than a quarter of the file.
std::optional<Node> reparse_edit(const Node& old_tree, std::string_view old_text, std::string_view new_text, uint32_t file);

}  // namespace wgf::config
