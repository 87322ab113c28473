// A YAML document as a plain tree that remembers where every key and value came from.
// libyaml is used only in tree.cpp; everything above sees this tree. Duplicate keys, which
// YAML parsers accept silently, are reported here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/diag.hpp"

namespace wgf::config {

struct Entry;

struct Node {
    enum class Kind : uint8_t { null, scalar, map, seq };
    Kind kind = Kind::null;
    bool quoted = false;  // scalar written in quotes (then never a number or boolean)
    Loc loc;
    std::string scalar;
    std::vector<Entry> map;  // in document order
    std::vector<Node> seq;

    bool is_map() const { return kind == Kind::map; }
    bool is_seq() const { return kind == Kind::seq; }
    bool is_scalar() const { return kind == Kind::scalar; }
    bool is_null() const { return kind == Kind::null; }
    const Entry* find(std::string_view key) const;
    // Everything, locations included: the same text parses to equal trees.
    bool operator==(const Node&) const = default;
};

struct Entry {
    std::string key;
    Loc key_loc;
    Node value;

    bool operator==(const Entry&) const = default;
};

const char* kind_name(const Node& n);

// The most one document may hold, counting each alias as the copy it becomes: values (scalars,
// maps, lists, keys included) and bytes of scalar text. Absolute, so that neither an alias bomb
// nor a file of tiny values can cost more than a few hundred MiB of tree. A generated
// 100,000-peer fleet (tests/bench/gen_fleet.py) holds about 800,000 values and 10 MiB of text.
inline constexpr size_t kMaxYamlNodes = 3'000'000;
inline constexpr size_t kMaxYamlScalarBytes = 128u << 20;
// Everything above this layer walks the tree recursively; keep it shallow.
inline constexpr unsigned kMaxYamlDepth = 200;

// Parses one YAML document. On a syntax error reports it and returns a null node.
Node parse_yaml(std::string_view text, uint32_t file, Diagnostics& diags);

// Merges a drop-in document into the main one: maps merge deeply, the top-level lists `forwards`
// and `http_routes` concatenate, and anything else set in both is reported as a conflict.
void merge_into(Node& base, Node&& add, const Sources& sources, Diagnostics& diags, const std::string& path = "");

// Finds the node at a YAML path like "fleets.mesh.peers.laptop1.endpoint" or "forwards[2].to".
// Returns the location of the value (or of its key when `key` is true); unknown when not found,
// falling back to the deepest node that exists.
Loc locate(const Node& root, std::string_view path, bool key = false);

std::string join_path(std::string_view parent, std::string_view key);
std::string index_path(std::string_view parent, size_t index);

}  // namespace wgf::config
