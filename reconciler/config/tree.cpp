#include "config/tree.hpp"

#include <charconv>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace wgf::config {
namespace {

// Aliases expand into copies; cap the total so "billion laughs" input is an error, not an OOM.
// Every real node takes at least a byte of text, so more nodes than bytes can only come from
// alias expansion; a small floor leaves room for modest, legitimate reuse of anchors.
constexpr size_t kMinNodeBudget = 1'000'000;
// An alias may refer to its own ancestor ("a: &a [*a]"): yaml-cpp then hands us a cycle.
constexpr unsigned kMaxDepth = 200;

struct Converter {
    uint32_t file;
    Diagnostics& diags;
    std::string_view text;
    size_t max_nodes;
    size_t count = 0;
    bool too_big = false;

    // yaml-cpp 0.7 silently closes a quoted scalar at the end of the document; YAML does not.
    bool closed_quote(int pos) const {
        if (pos < 0 || static_cast<size_t>(pos) >= text.size()) return true;
        char q = text[static_cast<size_t>(pos)];
        if (q != '"' && q != '\'') return true;  // not at the quote: nothing to check
        for (size_t i = static_cast<size_t>(pos) + 1; i < text.size(); ++i) {
            if (q == '"' && text[i] == '\\') ++i;
            else if (text[i] == q) {
                if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') ++i;  // '' is an escaped quote
                else return true;
            }
        }
        return false;
    }

    Loc loc_of(const YAML::Node& n, Loc fallback) const {
        auto m = n.Mark();
        if (m.line < 0 || m.column < 0) return fallback;
        return Loc{file, static_cast<uint32_t>(m.line + 1), static_cast<uint32_t>(m.column + 1)};
    }

    Node convert(const YAML::Node& in, Loc fallback, const std::string& path, unsigned depth = 0) {
        Node out;
        out.loc = loc_of(in, fallback);
        if (depth > kMaxDepth) {
            if (!too_big) diags.error(out.loc, "", fmt::format("nested deeper than {} levels (or an alias refers to itself)", kMaxDepth));
            too_big = true;
            return out;
        }
        if (++count > max_nodes) {
            if (!too_big)
                diags.error(out.loc, path, fmt::format("document too large: aliases expand to more than {} nodes; write the values out or use fewer aliases", max_nodes));
            too_big = true;
            return out;
        }
        switch (in.Type()) {
            case YAML::NodeType::Undefined:
            case YAML::NodeType::Null:
                out.kind = Node::Kind::null;
                break;
            case YAML::NodeType::Scalar:
                out.kind = Node::Kind::scalar;
                out.scalar = in.Scalar();
                out.quoted = in.Tag() == "!";
                if (out.quoted && !closed_quote(in.Mark().pos)) {
                    diags.error(out.loc, path, "YAML syntax error: this quoted string is never closed");
                    out.kind = Node::Kind::null;
                }
                break;
            case YAML::NodeType::Sequence: {
                out.kind = Node::Kind::seq;
                out.seq.reserve(in.size());
                size_t i = 0;
                for (const auto& item : in) out.seq.push_back(convert(item, out.loc, index_path(path, i++), depth + 1));
                break;
            }
            case YAML::NodeType::Map: {
                out.kind = Node::Kind::map;
                out.map.reserve(in.size());
                std::unordered_map<std::string_view, Loc> seen;
                seen.reserve(in.size());
                for (const auto& kv : in) {
                    Loc kloc = loc_of(kv.first, out.loc);
                    if (!kv.first.IsScalar()) {
                        diags.error(kloc, path, "keys must be plain strings, not a " +
                                                    std::string(kv.first.IsMap() ? "map" : kv.first.IsSequence() ? "list" : "null"));
                        continue;
                    }
                    const std::string& key = kv.first.Scalar();
                    std::string child = join_path(path, key);
                    Entry e{key, kloc, convert(kv.second, kloc, child, depth + 1)};
                    out.map.push_back(std::move(e));
                    auto [it, fresh] = seen.emplace(out.map.back().key, kloc);
                    if (!fresh)
                        diags.error(kloc, child,
                                    fmt::format("duplicate key {} (first defined at line {}, column {})",
                                                quote(key), it->second.line, it->second.col));
                }
                break;
            }
        }
        return out;
    }
};

}  // namespace

const Entry* Node::find(std::string_view key) const {
    for (const auto& e : map)
        if (e.key == key) return &e;
    return nullptr;
}

const char* kind_name(const Node& n) {
    switch (n.kind) {
        case Node::Kind::null: return "nothing (null)";
        case Node::Kind::scalar: return "a scalar";
        case Node::Kind::map: return "a map";
        case Node::Kind::seq: return "a list";
    }
    return "?";
}

std::string join_path(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    std::string out;
    out.reserve(parent.size() + key.size() + 1);
    out += parent;
    out += '.';
    out += key;
    return out;
}

std::string index_path(std::string_view parent, size_t index) { return fmt::format("{}[{}]", parent, index); }

Node parse_yaml(std::string_view text, uint32_t file, Diagnostics& diags) {
    try {
        YAML::Node doc = YAML::Load(std::string(text));
        Converter c{file, diags, text, std::max(kMinNodeBudget, text.size())};
        return c.convert(doc, Loc{file, 1, 1}, "");
    } catch (const YAML::Exception& e) {
        Loc loc{file, static_cast<uint32_t>(std::max(0, e.mark.line) + 1), static_cast<uint32_t>(std::max(0, e.mark.column) + 1)};
        diags.error(loc, "", "YAML syntax error: " + e.msg);
        return Node{};
    }
}

void merge_into(Node& base, Node&& add, const Sources& sources, Diagnostics& diags, const std::string& path) {
    if (add.is_null()) return;
    if (base.is_null()) {
        base = std::move(add);
        return;
    }
    auto where = [&](const Loc& l) {
        return fmt::format("{}:{}:{}", l.known() ? sources.name(l.file) : "?", l.line, l.col);
    };
    if (base.is_map() && add.is_map()) {
        for (auto& e : add.map) {
            // Linear search keeps document order; drop-ins are small compared with the main file.
            Entry* mine = nullptr;
            for (auto& b : base.map)
                if (b.key == e.key) mine = &b;
            if (!mine) {
                base.map.push_back(std::move(e));
                continue;
            }
            merge_into(mine->value, std::move(e.value), sources, diags, join_path(path, e.key));
        }
        return;
    }
    if (base.is_seq() && add.is_seq() && (path == "forwards" || path == "http_routes")) {
        for (auto& item : add.seq) base.seq.push_back(std::move(item));
        return;
    }
    diags.error(add.loc, path, fmt::format("conflicts with the value set at {}: a drop-in may add keys, not change them",
                                           where(base.loc)));
}

Loc locate(const Node& root, std::string_view path, bool key) {
    const Node* cur = &root;
    Loc last_key = root.loc;
    size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '[') {
            auto close = path.find(']', i);
            size_t idx = 0;
            std::from_chars(path.data() + i + 1, path.data() + close, idx);
            if (!cur->is_seq() || idx >= cur->seq.size()) return cur->loc;
            cur = &cur->seq[idx];
            last_key = cur->loc;
            i = close + 1;
            continue;
        }
        if (path[i] == '.') ++i;
        auto end = path.find_first_of(".[", i);
        auto seg = path.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
        const Entry* e = cur->is_map() ? cur->find(seg) : nullptr;
        if (!e) return cur == &root ? root.loc : (key ? last_key : cur->loc);
        last_key = e->key_loc;
        cur = &e->value;
        i = end == std::string_view::npos ? path.size() : end;
    }
    return key ? last_key : cur->loc;
}

}  // namespace wgf::config
