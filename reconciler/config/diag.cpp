#include "config/diag.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace wgf::config {
namespace {

constexpr const char* kEllipsis = "…";
constexpr size_t kMaxShownPath = 400;

// The text as one string per column, as libyaml counts columns (one per character): a valid
// UTF-8 character as it is, a tab as a tab, and anything a terminal should not receive (control
// characters, bytes that are not valid UTF-8) as '?'.
std::vector<std::string> printable_cells(std::string_view text) {
    std::vector<std::string> cells;
    size_t i = 0;
    while (i < text.size()) {
        auto c = static_cast<unsigned char>(text[i]);
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool valid = len > 0 && i + len <= text.size() && !(len > 1 && c < 0xc2) && !(c > 0xf4);
        for (size_t k = 1; valid && k < len; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
        if (valid && len > 2) {  // no overlong forms, no surrogates, nothing past U+10FFFF
            auto c1 = static_cast<unsigned char>(text[i + 1]);
            valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0) && !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
        }
        if (!valid) {
            cells.emplace_back("?");
            ++i;
            continue;
        }
        const bool c0_control = len == 1 && (c < 0x20 || c == 0x7f) && c != '\t';
        const bool c1_control = len == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0;
        if (c0_control || c1_control) cells.emplace_back("?");
        else cells.emplace_back(text.substr(i, len));
        i += len;
    }
    return cells;
}

bool lead_byte(char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }

// The byte offset `n` characters after (n > 0) or before (n < 0) byte offset `at`, stopping at
// the ends of `text`.
size_t step(std::string_view text, size_t at, long n) {
    for (; n > 0 && at < text.size(); --n) do
            ++at;
        while (at < text.size() && !lead_byte(text[at]));
    for (; n < 0 && at > 0; ++n) do
            --at;
        while (at > 0 && !lead_byte(text[at]));
    return at;
}

// The source line and a caret under column `col`, indented by four spaces. A long line shows
// kMaxShownColumns columns around the caret, '…' marking what is cut; only that window is
// looked at closely, so a line of any length costs little.
std::string echo_line(std::string_view line, uint32_t col) {
    const size_t caret_at = step(line, 0, col ? long(col) - 1 : 0);
    size_t start = step(line, caret_at, -long(kMaxShownColumns / 2));
    size_t end = step(line, start, long(kMaxShownColumns));
    if (end == line.size()) start = step(line, end, -long(kMaxShownColumns));
    auto before = printable_cells(line.substr(start, caret_at - start));
    auto shown = printable_cells(line.substr(start, end - start));
    std::string out = "    ";
    if (start > 0) out += kEllipsis;
    for (const auto& c : shown) out += c;
    if (end < line.size()) out += kEllipsis;
    out += "\n    ";
    if (start > 0) out += ' ';  // under the leading ellipsis
    // Keep tabs so the caret lines up under the same column.
    for (const auto& c : before) out += c == "\t" ? '\t' : ' ';
    out += "^\n";
    return out;
}

}  // namespace

uint32_t Sources::add(std::string name, std::string text) {
    File f{.name = std::move(name), .text = std::move(text), .line_starts = {0}};
    for (auto nl = f.text.find('\n'); nl != std::string::npos; nl = f.text.find('\n', nl + 1))
        f.line_starts.push_back(static_cast<uint32_t>(nl + 1));
    files_.push_back(std::move(f));
    return static_cast<uint32_t>(files_.size() - 1);
}

std::string_view Sources::line(uint32_t file, uint32_t line) const {
    if (file >= files_.size() || line == 0) return {};
    const File& f = files_[file];
    if (line > f.line_starts.size()) return {};
    uint32_t start = f.line_starts[line - 1];
    // A byte order mark is no part of the first line (the parser skips it too).
    if (line == 1 && std::string_view(f.text).starts_with("\xef\xbb\xbf")) start = 3;
    if (start >= f.text.size()) return {};
    auto end = f.text.find('\n', start);
    std::string_view l(f.text.data() + start, (end == std::string::npos ? f.text.size() : end) - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    return l;
}

void Diagnostics::add(Diagnostic d) {
    ++(d.severity == Severity::error ? errors_ : warnings_);
    if (all_.size() < kMaxKeptDiagnostics) all_.push_back(std::move(d));
}

void Diagnostics::error(Loc loc, std::string path, std::string message) {
    add({Severity::error, loc, std::move(path), std::move(message)});
}

void Diagnostics::warning(Loc loc, std::string path, std::string message) {
    add({Severity::warning, loc, std::move(path), std::move(message)});
}

void Diagnostics::pending(Loc loc, std::string path, std::string message) {
    add({.severity = Severity::warning, .loc = loc, .path = std::move(path), .message = std::move(message), .pending = true});
}

std::vector<Diagnostic> Diagnostics::sorted() const {
    auto out = all_;
    std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::tie(a.loc.file, a.loc.line, a.loc.col) < std::tie(b.loc.file, b.loc.line, b.loc.col);
    });
    return out;
}

std::string render(const Diagnostic& d, const Sources& sources) {
    std::string out;
    const char* sev = d.severity == Severity::error ? "error" : "warning";
    if (d.loc.known()) {
        out += sources.name(d.loc.file);
        if (d.loc.line) out += fmt::format(":{}:{}", d.loc.line, d.loc.col);
        out += ": ";
    }
    out += sev;
    out += ": ";
    if (!d.path.empty()) {
        auto cells = printable_cells(d.path.substr(0, 4 * kMaxShownPath));
        if (cells.size() > kMaxShownPath) {
            cells.resize(kMaxShownPath);
            cells.emplace_back(kEllipsis);
        }
        for (const auto& c : cells) out += c;
        out += ": ";
    }
    out += d.message;
    out += '\n';
    if (d.loc.known() && d.loc.line) {
        auto line = sources.line(d.loc.file, d.loc.line);
        if (!line.empty()) out += echo_line(line, d.loc.col);
    }
    return out;
}

std::string render_all(const Diagnostics& diags, const Sources& sources, bool warnings, Pending pending) {
    auto sorted = diags.sorted();
    // Pending warnings set apart are not shown one by one, and counted in neither cap nor tail.
    std::vector<Diagnostic> waiting;
    size_t total_warnings = diags.warnings();
    if (pending != Pending::each) {
        auto apart = std::stable_partition(sorted.begin(), sorted.end(), [](const Diagnostic& d) { return !d.pending; });
        waiting.assign(std::make_move_iterator(apart), std::make_move_iterator(sorted.end()));
        sorted.erase(apart, sorted.end());
        total_warnings -= std::min(total_warnings, waiting.size());
    }
    // Past the cap, errors are shown before warnings; what is shown stays in position order.
    size_t shown_errors = 0, shown_warnings = 0;
    for (const auto& d : sorted)
        if (d.severity == Severity::error && shown_errors < kMaxShownDiagnostics) ++shown_errors;
    if (warnings)
        for (const auto& d : sorted)
            if (d.severity == Severity::warning && shown_errors + shown_warnings < kMaxShownDiagnostics) ++shown_warnings;
    std::string out;
    size_t errors_left = shown_errors, warnings_left = shown_warnings;
    for (const auto& d : sorted) {
        size_t& left = d.severity == Severity::error ? errors_left : warnings_left;
        if (left == 0) continue;
        --left;
        out += render(d, sources);
    }
    if (warnings && pending == Pending::summary && !waiting.empty()) {
        constexpr size_t kNamed = 8;
        std::string names;
        for (size_t i = 0; i < waiting.size() && i < kNamed; ++i) names += (i ? ", " : "") + waiting[i].path;
        if (waiting.size() > kNamed) names += fmt::format(" and {} more", waiting.size() - kNamed);
        const Loc& at = waiting.front().loc;
        out += fmt::format(
            "{}warning: {} without a public key yet, pending until it is known (public_key: or keys_dir): {} "
            "(-v shows each)\n",
            at.known() ? sources.name(at.file) + ": " : "",
            waiting.size() == 1 ? std::string("1 member") : fmt::format("{} members", waiting.size()), names);
    }
    size_t more_errors = diags.errors() - shown_errors;
    size_t more_warnings = warnings ? total_warnings - shown_warnings : 0;
    auto count = [](size_t n, const char* what) { return fmt::format("{} more {}{}", n, what, n == 1 ? "" : "s"); };
    if (more_errors && more_warnings)
        out += fmt::format("… and {} and {} (only the first {} are shown)\n", count(more_errors, "error"), count(more_warnings, "warning"),
                           kMaxShownDiagnostics);
    else if (more_errors || more_warnings)
        out += fmt::format("… and {} (only the first {} are shown)\n",
                           more_errors ? count(more_errors, "error") : count(more_warnings, "warning"), kMaxShownDiagnostics);
    return out;
}

std::string quote(std::string_view value) {
    std::string out = "'";
    size_t n = 0;
    for (unsigned char c : value) {
        if (++n > 80) {
            out += "…";
            break;
        }
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
    return out + "'";
}

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::optional<std::string> nearest_word(std::string_view word, const std::vector<std::string_view>& candidates) {
    if (word.empty()) return std::nullopt;
    std::optional<std::string> best;
    size_t best_d = std::min(std::max<size_t>(2, word.size() / 3), word.size() - 1) + 1;
    for (auto c : candidates) {
        size_t d = edit_distance(word, c);
        if (d < best_d) best_d = d, best = std::string(c);
    }
    return best;
}

}  // namespace wgf::config
