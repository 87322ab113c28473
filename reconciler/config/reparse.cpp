#include "config/reparse.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace wgf::config {
namespace {

using Lines = std::vector<std::string_view>;

// The text's lines, each with its '\n' (the last one may have none).
Lines split_lines(std::string_view t) {
    Lines out;
    out.reserve(t.size() / 32 + 1);
    size_t at = 0;
    while (at < t.size()) {
        const void* nl = std::memchr(t.data() + at, '\n', t.size() - at);
        const size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - t.data()) + 1 : t.size();
        out.push_back(t.substr(at, end - at));
        at = end;
    }
    return out;
}

// libyaml also breaks lines at CR, NEL, LS and PS, and skips a byte order mark: locations in such a
// text are not counted in '\n' lines and bytes, so it is parsed whole.
bool lf_lines_only(std::string_view t) {
    if (t.starts_with("\xef\xbb\xbf")) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(t.data());
    for (size_t i = 0; i < t.size(); ++i) {
        if (p[i] == '\r') return false;
        if (p[i] < 0xc2 || p[i] > 0xe2) continue;
        const std::string_view rest = t.substr(i);
        if (rest.starts_with("\xc2\x85") || rest.starts_with("\xe2\x80\xa8") || rest.starts_with("\xe2\x80\xa9")) return false;
    }
    return true;
}

std::string_view body(std::string_view line) { return line.ends_with('\n') ? line.substr(0, line.size() - 1) : line; }

size_t indent(std::string_view line) {
    size_t i = 0;
    while (i < line.size() && line[i] == ' ') ++i;
    return i;
}

bool blank_or_comment(std::string_view line) {
    line = body(line);
    const size_t i = indent(line);
    return i == line.size() || line[i] == '#';
}

// The key of a block mapping entry starts its line: only spaces before it.
bool starts_line(const Lines& lines, const Loc& at) {
    if (at.line == 0 || at.line > lines.size() || at.col == 0) return false;
    std::string_view l = body(lines[at.line - 1]);
    return at.col - 1 < l.size() && indent(l) == at.col - 1;
}

// Whether `n` is a block sequence whose every item starts on its dash's line ("- x", "- k: v",
// "- {a: 1}"): placed at its first dash, each item's content after a dash at the sequence's
// column, one item per line. A null item is placed at the next token, an item written below its
// dash starts on another line: neither is.
bool block_sequence(const Lines& lines, const Node& n) {
    if (!n.is_seq() || n.seq.empty() || !starts_line(lines, n.loc) || body(lines[n.loc.line - 1])[n.loc.col - 1] != '-') return false;
    uint32_t prev = 0;
    for (const auto& item : n.seq) {
        const Loc& l = item.loc;
        if (l.line <= prev || l.line > lines.size() || l.col <= n.loc.col) return false;
        std::string_view line = body(lines[l.line - 1]);
        if (indent(line) != n.loc.col - 1 || line[n.loc.col - 1] != '-') return false;
        prev = l.line;
    }
    return true;
}

// A run of entries [first, last] of one block mapping, or of items of one block sequence, the lines
// it spans in the old text.
struct Candidate {
    std::vector<size_t> path;   // entry or item indices from the root to the collection
    const Node* map = nullptr;  // the mapping or the sequence
    size_t first = 0, last = 0;
    uint32_t begin = 0, end = 0;  // 1-based lines; `end` leaves out trailing blank and comment lines
    uint32_t indent = 0;          // of the mapping's keys, or of the sequence's dashes
    bool seq() const { return map->is_seq(); }
};

// The line each child of a collection starts on: a mapping's keys, a sequence's items.
std::vector<uint32_t> child_lines(const Node& n) {
    std::vector<uint32_t> out;
    if (n.is_map())
        for (const auto& e : n.map) out.push_back(e.key_loc.line);
    else
        for (const auto& item : n.seq) out.push_back(item.loc.line);
    return out;
}

// Whether a block mapping's keys each start a line at its column, in order.
bool block_mapping(const Lines& lines, const Node& m) {
    // A block mapping is placed at its first key, a flow mapping at its brace.
    if (!m.is_map() || m.map.empty() || m.map.front().key_loc != m.loc || !starts_line(lines, m.loc)) return false;
    for (size_t k = 0; k < m.map.size(); ++k)
        if (!starts_line(lines, m.map[k].key_loc) || m.map[k].key_loc.col != m.loc.col ||
            (k > 0 && m.map[k].key_loc.line <= m.map[k - 1].key_loc.line))
            return false;
    return true;
}

// The runs of entries or items that hold old lines [lo, hi] (an insertion after line lo:
// lo == hi), from the outermost collection inwards. A sequence's items are not looked into.
std::vector<Candidate> enclosing(const Node& root, const Lines& old, uint32_t lo, uint32_t hi) {
    std::vector<Candidate> out;
    const Node* m = &root;
    auto span_end = static_cast<uint32_t>(old.size());  // last line of the collection's span
    std::vector<size_t> path;
    while (block_mapping(old, *m) || block_sequence(old, *m)) {
        const std::vector<uint32_t> starts = child_lines(*m);
        auto i_it = std::upper_bound(starts.begin(), starts.end(), lo);
        auto j_it = std::upper_bound(starts.begin(), starts.end(), hi);
        if (i_it == starts.begin()) break;
        const size_t i = static_cast<size_t>(i_it - starts.begin()) - 1;
        const size_t j = static_cast<size_t>(j_it - starts.begin()) - 1;
        const uint32_t begin = starts[i];
        const uint32_t j_end = j + 1 < starts.size() ? starts[j + 1] - 1 : span_end;
        uint32_t end = j_end;
        while (end > starts[j] && blank_or_comment(old[end - 1])) --end;
        if (hi > end) break;
        out.push_back(Candidate{.path = path, .map = m, .first = i, .last = j, .begin = begin, .end = end, .indent = m->loc.col - 1});
        if (i != j || m->is_seq()) break;
        const Node& v = m->map[i].value;
        if (v.loc.line <= begin) break;
        path.push_back(i);
        m = &v;
        span_end = j_end;
    }
    return out;
}

struct Size {
    size_t nodes = 0;
    size_t bytes = 0;
};

// What the parser's budget counts for a tree, at most: a null's text ("", "~", "null") is not
// kept, so it counts as the longest.
void count(const Node& n, Size& s) {
    ++s.nodes;
    s.bytes += n.is_null() ? 4 : n.scalar.size();
    for (const auto& e : n.map) {
        ++s.nodes;
        s.bytes += e.key.size();
        count(e.value, s);
    }
    for (const auto& item : n.seq) count(item, s);
}

unsigned height(const Node& n) {
    unsigned h = 0;
    for (const auto& e : n.map) h = std::max(h, height(e.value));
    for (const auto& item : n.seq) h = std::max(h, height(item));
    return n.is_map() || n.is_seq() ? h + 1 : 0;
}

uint32_t last_line(const Node& n) {
    uint32_t l = n.loc.line;
    for (const auto& e : n.map) l = std::max({l, e.key_loc.line, last_line(e.value)});
    for (const auto& item : n.seq) l = std::max(l, last_line(item));
    return l;
}

// Whether a location outside entries (or items) [first, last] of the candidate's collection lies
// on lines [begin, end]: a value with nothing after it is placed at the next token, which may be
// the first of those entries.
bool points_into(const Node& n, const Candidate& c) {
    auto in = [&](const Loc& l) { return l.line >= c.begin && l.line <= c.end; };
    auto skipped = [&](size_t k) { return &n == c.map && k >= c.first && k <= c.last; };
    if (&n != c.map && in(n.loc)) return true;  // the collection's own location moves to its new first child
    for (size_t k = 0; k < n.map.size(); ++k) {
        if (skipped(k)) continue;
        if (in(n.map[k].key_loc) || points_into(n.map[k].value, c)) return true;
    }
    for (size_t k = 0; k < n.seq.size(); ++k)
        if (!skipped(k) && points_into(n.seq[k], c)) return true;
    return false;
}

// Moves every location on a line after `after` by `delta` lines.
void shift(Node& n, uint32_t after, int64_t delta) {
    auto move = [&](Loc& l) {
        if (l.line > after) l.line = static_cast<uint32_t>(l.line + delta);
    };
    move(n.loc);
    for (auto& e : n.map) {
        move(e.key_loc);
        shift(e.value, after, delta);
    }
    for (auto& item : n.seq) shift(item, after, delta);
}

// Whether `text`, the new lines of candidate `c`, can stand alone: the first line starts at the
// collection's indentation, no later line is less indented (a list under a key may start at it),
// and nothing in it depends on the rest of the document (anchors, aliases, tags) or on the lines
// after it (block scalars keep trailing blank lines). A sequence's lines at its indentation are
// its items' dashes.
bool self_contained(const Lines& lines, uint32_t indent_of_keys, bool seq) {
    auto dash = [](std::string_view l, size_t at) { return l[at] == '-' && (l.size() == at + 1 || l[at + 1] == ' '); };
    for (size_t k = 0; k < lines.size(); ++k) {
        std::string_view l = body(lines[k]);
        if (l.find_first_of("&*!|>") != std::string_view::npos) return false;
        const size_t in = indent(l);
        if (in == l.size()) continue;
        // A document marker or a directive would end the document here, but not in the part alone.
        if (in == 0 && (l.starts_with("---") || l.starts_with("...") || l[0] == '%')) return false;
        if (k == 0 && in != indent_of_keys) return false;
        if (in > indent_of_keys) continue;
        if (in < indent_of_keys) return false;
        if (seq) {
            if (!dash(l, in)) return false;
            continue;
        }
        // At the keys' indentation: another key of the mapping (one of the new entries), or an
        // item of a list that is the value of the key before it. No explicit keys ('?', ':').
        if (l[in] == '?' || l[in] == ':') return false;
        if (l[in] == '-' && (k == 0 || !dash(l, in))) return false;
    }
    return true;
}

// Edits `tree` when candidate `c` can take the edit; leaves it as it was when not.
bool try_candidate(const Candidate& c, Node& tree, const Lines& old, const Lines& now, size_t new_size, uint32_t file) {
    const int64_t delta = static_cast<int64_t>(now.size()) - static_cast<int64_t>(old.size());
    const int64_t new_end = c.end + delta;  // the candidate's last line in the new text
    if (new_end > static_cast<int64_t>(now.size()) || new_end + 1 < c.begin) return false;
    const Lines old_part(old.begin() + (c.begin - 1), old.begin() + c.end);
    const Lines new_part(now.begin() + (c.begin - 1), now.begin() + new_end);
    if (!self_contained(old_part, c.indent, c.seq()) || !self_contained(new_part, c.indent, c.seq())) return false;
    const std::string_view text = new_part.empty()
                                      ? std::string_view{}
                                      : std::string_view(
                                            new_part.front().data(),
                                            static_cast<size_t>(new_part.back().data() + new_part.back().size() - new_part.front().data()));
    if (text.size() > new_size / 4 && text.size() > 4096) return false;

    Diagnostics d;
    Node part = parse_yaml(text, file, d);
    if (d.errors() || d.warnings()) return false;
    const size_t children = c.seq() ? c.map->seq.size() : c.map->map.size();
    if (part.is_null()) {
        // Only blank and comment lines: the entries are gone. A collection left empty would be a
        // null in the document, not an empty one.
        if (!std::all_of(new_part.begin(), new_part.end(), blank_or_comment)) return false;
        if (c.last - c.first + 1 == children) return false;
        if (points_into(tree, c)) return false;
    } else {
        if (part.loc != Loc{.file = file, .line = 1, .col = c.indent + 1}) return false;
        if (c.seq()) {
            // Items again, each on its dash's line at the sequence's column.
            if (!block_sequence(new_part, part)) return false;
        } else {
            if (!part.is_map()) return false;
            for (const auto& e : part.map)
                if (e.key_loc.col != c.indent + 1) return false;
            std::unordered_set<std::string_view> keys;
            for (const auto& e : part.map) keys.insert(e.key);
            for (size_t k = 0; k < c.map->map.size(); ++k)
                if ((k < c.first || k > c.last) && keys.count(c.map->map[k].key)) return false;
        }
        // A value with nothing after it is placed at the next token, which lies beyond the part.
        if (last_line(part) > new_part.size()) return false;
        if (c.path.size() + 1 + height(part) + 2 >= kMaxYamlDepth) return false;
    }

    Size total, gone, added;
    count(tree, total);
    for (size_t k = c.first; k <= c.last; ++k) {
        if (c.seq()) {
            count(c.map->seq[k], gone);
            continue;
        }
        ++gone.nodes;
        gone.bytes += c.map->map[k].key.size();
        count(c.map->map[k].value, gone);
    }
    if (!part.is_null()) {
        count(part, added);
        --added.nodes;  // the part's own collection
    }
    if (total.nodes - gone.nodes + added.nodes > kMaxYamlNodes || total.bytes - gone.bytes + added.bytes > kMaxYamlScalarBytes)
        return false;

    if (delta != 0) shift(tree, c.end, delta);
    if (!part.is_null()) shift(part, 0, c.begin - 1);
    Node* m = &tree;
    for (size_t k : c.path) m = &m->map[k].value;
    const auto first = static_cast<std::ptrdiff_t>(c.first), past = static_cast<std::ptrdiff_t>(c.last + 1);
    if (c.seq()) {
        auto at = m->seq.erase(m->seq.begin() + first, m->seq.begin() + past);
        m->seq.insert(at, std::make_move_iterator(part.seq.begin()), std::make_move_iterator(part.seq.end()));
        // Placed at its first dash, on its first item's line.
        if (!m->seq.empty()) m->loc = Loc{.file = m->loc.file, .line = m->seq.front().loc.line, .col = c.indent + 1};
        return true;
    }
    auto at = m->map.erase(m->map.begin() + first, m->map.begin() + past);
    m->map.insert(at, std::make_move_iterator(part.map.begin()), std::make_move_iterator(part.map.end()));
    if (!m->map.empty()) m->loc = m->map.front().key_loc;
    return true;
}

}  // namespace

bool reparse_edit(Node& tree, std::string_view old_text, std::string_view new_text, uint32_t file) {
    if (!lf_lines_only(old_text) || !lf_lines_only(new_text)) return false;
    const Lines old = split_lines(old_text);
    const Lines now = split_lines(new_text);
    size_t same_head = 0;
    while (same_head < old.size() && same_head < now.size() && old[same_head] == now[same_head]) ++same_head;
    if (same_head == old.size() && same_head == now.size()) return true;
    size_t same_tail = 0;
    while (same_tail < old.size() - same_head && same_tail < now.size() - same_head &&
           old[old.size() - 1 - same_tail] == now[now.size() - 1 - same_tail])
        ++same_tail;
    // Old lines [lo, hi] (1-based) became other lines; none (an insertion) when hi < lo.
    auto lo = static_cast<uint32_t>(same_head + 1);
    auto hi = static_cast<uint32_t>(old.size() - same_tail);
    if (hi < lo) {
        if (same_head == 0) return false;
        lo = hi = static_cast<uint32_t>(same_head);  // the line the new ones follow
    }
    const auto candidates = enclosing(tree, old, lo, hi);
    // The innermost first: the smallest part.
    for (size_t k = candidates.size(); k-- > 0;)
        if (try_candidate(candidates[k], tree, old, now, new_text.size(), file)) return true;
    return false;
}

}  // namespace wgf::config
