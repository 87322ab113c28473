// Parsing an edited YAML document again by its edited part. `watch` loads the fleet file again on
// every edit, and a change to one peer of a 10,000-peer file need not tokenize the other peers.
// The tree becomes exactly what parse_yaml() builds from the new text, locations included, or
// stays as it was when this edit is not one whose part parses on its own to the same result; the
// caller then parses the whole text. Every doubt declines.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/tree.hpp"

namespace wgf::config {

// `tree` is what parse_yaml(old_text, file) built without any diagnostic. When the edit is taken,
// `tree` becomes the tree of `new_text` and the result is true; when not, `tree` stays as it was.
// The edit is taken when the lines that differ lie within consecutive entries of one block mapping
// (one peer, one setting of it, a few peers, a top-level key) and those lines, parsed alone, are
// again entries of that mapping at its indentation: they replace the old entries, and every
// location after them moves by the lines added or removed. Not taken: anchors, aliases, tags,
// block scalars, flow collections around the edit, line breaks other than LF, a byte order mark,
// keys the edit would duplicate, and an edited part larger than a quarter of the file.
bool reparse_edit(Node& tree, std::string_view old_text, std::string_view new_text, uint32_t file);

}  // namespace wgf::config
