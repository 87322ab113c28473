#include "config/tree.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml.h>

namespace wgf::config {
namespace {

constexpr std::string_view kUtf8Bom = "\xef\xbb\xbf";

// libyaml counts columns in characters: the number of UTF-8 lead bytes.
size_t count_code_points(std::string_view s) {
    return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";
constexpr std::string_view kNullTag = "tag:yaml.org,2002:null";

// libyaml (the reference C parser) turns the text into events; this builds the tree from them.
// It reads a 1 MB fleet file in about a tenth of the time yaml-cpp takes (BENCHMARKS.md).
class Builder {
public:
    Builder(std::string_view text, uint32_t file, Diagnostics& diags) : file_(file), diags_(diags) {
        // YAML allows a byte order mark; with the encoding fixed to UTF-8, libyaml would take it
        // for content. Columns of the first line count from after it, as editors show them.
        if (text.starts_with(kUtf8Bom)) text.remove_prefix(kUtf8Bom.size());
        text_ = text;
        yaml_parser_initialize(&parser_);
        yaml_parser_set_encoding(&parser_, YAML_UTF8_ENCODING);
        // libyaml refuses a null pointer, which an empty string_view may hold.
        yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.empty() ? "" : text.data()), text.size());
    }
    ~Builder() { yaml_parser_delete(&parser_); }
    Builder(const Builder&) = delete;
    Builder& operator=(const Builder&) = delete;

    Node run() {
        if (text_.starts_with("\xff\xfe") || text_.starts_with("\xfe\xff")) {
            diags_.error(Loc{.file = file_, .line = 1, .col = 1}, "",
                         "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8");
            return Node{};
        }
        yaml_event_t ev;
        unsigned documents = 0;
        for (;;) {
            if (!yaml_parser_parse(&parser_, &ev)) {
                syntax_error();
                return Node{};
            }
            std::unique_ptr<yaml_event_t, decltype(&yaml_event_delete)> guard(&ev, &yaml_event_delete);
            switch (ev.type) {
                case YAML_STREAM_END_EVENT: return std::move(root_);
                case YAML_DOCUMENT_START_EVENT:
                    if (++documents > 1) {
                        diags_.error(loc(ev.start_mark), "",
                                     "a second YAML document ('---'): the fleet file holds exactly one; use a drop-in file instead");
                        return Node{};
                    }
                    break;
                case YAML_SCALAR_EVENT: scalar(ev); break;
                case YAML_ALIAS_EVENT: alias(ev); break;
                case YAML_SEQUENCE_START_EVENT: open(ev, Node::Kind::seq, ev.data.sequence_start.anchor, ev.data.sequence_start.tag); break;
                case YAML_MAPPING_START_EVENT: open(ev, Node::Kind::map, ev.data.mapping_start.anchor, ev.data.mapping_start.tag); break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT: close(); break;
                default: break;
            }
            if (stop_) return Node{};
        }
    }

private:
    struct Size {
        size_t nodes = 0;
        size_t bytes = 0;  // of scalar text
    };

    // A map or list being built. Maps alternate: a key (a scalar), then its value.
    struct Frame {
        Node node;
        std::string anchor;
        Size before;  // counted before this one opened (for its anchor's size)
        bool have_key = false;
        bool bad_key = false;  // the key was not a scalar: drop the value
        std::string key;
        Loc key_loc;
        // Key -> its first entry, only for a large map (see first_definition).
        std::unordered_map<std::string, size_t> index;
    };
    struct Anchored {
        Node node;
        Size size;  // its size once expanded, for the budget
    };

    Loc loc(const yaml_mark_t& m) const {
        return Loc{.file = file_, .line = static_cast<uint32_t>(m.line + 1), .col = static_cast<uint32_t>(m.column + 1)};
    }

    // The YAML path of the value about to be added at the top of the stack.
    std::string path() const {
        std::string p;
        for (const auto& f : stack_) {
            if (f.node.is_map()) {
                if (f.have_key) p = join_path(p, f.key);
            } else {
                p = index_path(p, f.node.seq.size());
            }
        }
        return p;
    }
    void syntax_error() {
        if (parser_.error == YAML_READER_ERROR) return reader_error();
        std::string msg = parser_.problem ? parser_.problem : "malformed YAML";
        if (parser_.context)
            msg = fmt::format("{} ({} at line {}, column {})", msg, parser_.context, parser_.context_mark.line + 1,
                              parser_.context_mark.column + 1);
        diags_.error(loc(parser_.problem_mark), "", "YAML syntax error: " + msg);
    }

    // libyaml decodes ahead of the scanner and reports a bad byte by its offset only (its mark
    // still points at the start); find the line and column from the offset.
    void reader_error() {
        size_t off = std::min(parser_.problem_offset, text_.size());
        // A sequence cut short is reported at the byte that fails to continue it; point at its start.
        if (std::string_view(parser_.problem ? parser_.problem : "") == "invalid trailing UTF-8 octet") {
            auto byte = [&](size_t i) { return static_cast<unsigned char>(text_[i]); };
            while (off > 0 && (byte(off - 1) & 0xc0) == 0x80) --off;
            if (off > 0 && byte(off - 1) >= 0xc0) --off;
        }
        std::string_view before = text_.substr(0, off);
        auto nl = before.rfind('\n');
        size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
        uint32_t line = 1 + static_cast<uint32_t>(std::count(before.begin(), before.end(), '\n'));
        uint32_t col = 1 + static_cast<uint32_t>(count_code_points(before.substr(line_start)));
        std::string_view problem = parser_.problem ? parser_.problem : "unreadable input";
        const int value = parser_.problem_value;
        std::string msg;
        if (problem == "control characters are not allowed")
            msg = value == 0 ? "a NUL byte: YAML text cannot contain one (is this a binary file?)"
                             : fmt::format(
                                   "control character U+{:04X} is not allowed in YAML text; write it as an escape "
                                   "in a double-quoted string",
                                   value);
        else if (problem == "invalid leading UTF-8 octet")
            msg = fmt::format(
                "not valid UTF-8: byte 0x{:02X} cannot start a character; the file must be UTF-8 text "
                "(is it Latin-1 or another legacy encoding?)",
                value);
        else if (problem == "invalid trailing UTF-8 octet")
            msg = fmt::format(
                "not valid UTF-8: byte 0x{:02X} starts a character that is cut short; the file must be "
                "UTF-8 text (is it Latin-1 or another legacy encoding?)",
                static_cast<unsigned char>(text_[off]));
        else if (problem == "incomplete UTF-8 octet sequence")
            msg = "not valid UTF-8: the file ends inside a character; the file must be UTF-8 text";
        else msg = fmt::format("not valid UTF-8: {}; the file must be UTF-8 text", problem);
        diags_.error(Loc{.file = file_, .line = line, .col = col}, "", msg);
    }

    // Counts what the tree holds, each alias as the copy it becomes, against absolute bounds: a
    // few aliases must not cost gigabytes, whatever the size of the file.
    bool budget(Size add, const yaml_mark_t& m) {
        count_.nodes += add.nodes;
        count_.bytes += add.bytes;
        if (count_.nodes <= kMaxYamlNodes && count_.bytes <= kMaxYamlScalarBytes) return true;
        diags_.error(loc(m), path(),
                     count_.nodes > kMaxYamlNodes
                         ? fmt::format("document too large: more than {} values once aliases are expanded; write the "
                                       "values out or use fewer aliases",
                                       kMaxYamlNodes)
                         : fmt::format("document too large: more than {} MiB of text once aliases are expanded; write "
                                       "the values out or use fewer aliases",
                                       kMaxYamlScalarBytes >> 20));
        stop_ = true;
        return false;
    }

    // What a tag makes of a scalar: a string (quoted) or a null. Any other tag is reported and
    // the value read as if it had none.
    void check_tag(const unsigned char* tag, const yaml_mark_t& m, bool& quoted, bool& null) {
        if (!tag) return;
        std::string_view t(reinterpret_cast<const char*>(tag));
        if (t == "!" || t == kStrTag) quoted = true;
        else if (t == kNullTag) null = true;
        else {
            unsupported_tag(t, m);
        }
    }

    void unsupported_tag(std::string_view tag, const yaml_mark_t& m) {
        diags_.error(loc(m), path(), fmt::format("YAML tag {} is not supported here; write the value without it", quote(tag)));
    }

    void scalar(const yaml_event_t& ev) {
        const auto& s = ev.data.scalar;
        Node n;
        n.loc = loc(ev.start_mark);
        std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        bool quoted = s.style != YAML_PLAIN_SCALAR_STYLE;
        bool null = !quoted && (value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL");
        check_tag(s.tag, ev.start_mark, quoted, null);
        if (null && !quoted) n.kind = Node::Kind::null;
        else {
            n.kind = Node::Kind::scalar;
            n.quoted = quoted;
            n.scalar.assign(value);
        }
        const Size size{1, value.size()};
        if (!budget(size, ev.start_mark)) return;
        if (s.anchor) anchors_[reinterpret_cast<const char*>(s.anchor)] = Anchored{n, size};
        const Loc at = n.loc;
        add(std::move(n), at);
    }

    void alias(const yaml_event_t& ev) {
        std::string name(reinterpret_cast<const char*>(ev.data.alias.anchor));
        auto it = anchors_.find(name);
        if (it == anchors_.end()) {
            bool open_now = false;
            for (const auto& f : stack_) open_now |= f.anchor == name;
            diags_.error(loc(ev.start_mark), path(),
                         open_now ? fmt::format("alias *{} refers to a node that contains it", name)
                                  : fmt::format("alias *{} refers to no anchor defined before it", name));
            stop_ = true;
            return;
        }
        if (!budget(it->second.size, ev.start_mark)) return;
        Node copy = it->second.node;
        const Loc at = loc(ev.start_mark);
        copy.loc = at;
        add(std::move(copy), at);
    }

    void open(const yaml_event_t& ev, Node::Kind kind, const unsigned char* anchor, const unsigned char* tag) {
        if (stack_.size() >= kMaxYamlDepth) {
            diags_.error(loc(ev.start_mark), path(), fmt::format("nested deeper than {} levels", kMaxYamlDepth));
            stop_ = true;
            return;
        }
        if (tag) {
            std::string_view t(reinterpret_cast<const char*>(tag));
            bool ok = kind == Node::Kind::map ? t == "tag:yaml.org,2002:map" : t == "tag:yaml.org,2002:seq";
            if (!ok) unsupported_tag(t, ev.start_mark);
        }
        if (!budget({1, 0}, ev.start_mark)) return;
        Frame f;
        f.node.kind = kind;
        f.node.loc = loc(ev.start_mark);
        f.before = Size{count_.nodes - 1, count_.bytes};
        if (anchor) f.anchor = reinterpret_cast<const char*>(anchor);
        stack_.push_back(std::move(f));
    }

    void close() {
        Frame f = std::move(stack_.back());
        stack_.pop_back();
        if (!f.anchor.empty()) anchors_[f.anchor] = Anchored{f.node, Size{count_.nodes - f.before.nodes, count_.bytes - f.before.bytes}};
        Loc at = f.node.loc;
        add(std::move(f.node), at);
    }

    // Adds a finished value where the parent expects it: the document root, a list item, a
    // map key, or a map value.
    void add(Node&& n, Loc at) {
        if (stack_.empty()) {
            root_ = std::move(n);
            return;
        }
        Frame& top = stack_.back();
        if (top.node.is_seq()) {
            top.node.seq.push_back(std::move(n));
            return;
        }
        if (!top.have_key) {
            top.bad_key = !n.is_scalar();
            if (top.bad_key) {
                top.key.clear();
                diags_.error(at, path(), fmt::format("keys must be plain strings, not {}", kind_name(n)));  // the map's path
            } else {
                top.key = std::move(n.scalar);
            }
            top.have_key = true;
            top.key_loc = at;
            return;
        }
        if (!top.bad_key) {
            if (const Entry* first = first_definition(top))
                diags_.error(top.key_loc, path(),
                             fmt::format("duplicate key {} (first defined at line {}, column {})", quote(top.key), first->key_loc.line,
                                         first->key_loc.col));
            top.node.map.push_back(Entry{.key = std::move(top.key), .key_loc = top.key_loc, .value = std::move(n)});
        }
        top.have_key = false;
    }

    // The entry that already defines the key about to be added to the map at `f`, if any.
    // Nearly every map holds a few keys and is searched directly; a large one (the peers of a
    // big fleet) gets a hash index once it grows, so the check stays linear in the file.
    static const Entry* first_definition(Frame& f) {
        constexpr size_t kSmallMap = 16;
        const auto& entries = f.node.map;
        if (entries.size() < kSmallMap) {
            for (const auto& e : entries)
                if (e.key == f.key) return &e;
            return nullptr;
        }
        if (f.index.empty())
            for (size_t i = 0; i < entries.size(); ++i) f.index.emplace(entries[i].key, i);  // keeps the first
        auto [it, fresh] = f.index.emplace(f.key, entries.size());
        return fresh ? nullptr : &entries[it->second];
    }

    std::string_view text_;
    uint32_t file_;
    Diagnostics& diags_;
    Size count_;
    bool stop_ = false;
    yaml_parser_t parser_{};
    std::vector<Frame> stack_;
    std::unordered_map<std::string, Anchored> anchors_;
    Node root_;
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
    Builder b(text, file, diags);
    return b.run();
}

void merge_into(Node& base, Node&& add, const Sources& sources, Diagnostics& diags, const std::string& path) {
    if (add.is_null()) return;
    if (base.is_null()) {
        base = std::move(add);
        return;
    }
    auto where = [&](const Loc& l) { return fmt::format("{}:{}:{}", l.known() ? sources.name(l.file) : "?", l.line, l.col); };
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
    diags.error(add.loc, path, fmt::format("conflicts with the value set at {}: a drop-in may add keys, not change them", where(base.loc)));
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
