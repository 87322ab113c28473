// Diagnostics: every problem found in a configuration, with the file, line, column, YAML path and
// message, rendered netplan-style with the source line and a caret. All are collected; callers
// apply nothing while any error exists.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wgf::config {

struct Loc {
    uint32_t file = UINT32_MAX;  // index into Sources; UINT32_MAX = no file
    uint32_t line = 0;           // 1-based; 0 = unknown
    uint32_t col = 0;            // 1-based

    bool known() const { return file != UINT32_MAX; }
    auto operator<=>(const Loc&) const = default;
};

enum class Severity { error, warning };

struct Diagnostic {
    Severity severity = Severity::error;
    Loc loc;
    std::string path;  // YAML path, e.g. fleets.mesh.peers.laptop1.endpoint
    std::string message;
    bool pending = false;  // a warning that a member has no key yet: summarised in one line
};

// The text of every file read, kept so diagnostics can quote the offending line.
class Sources {
public:
    uint32_t add(std::string name, std::string text);
    const std::string& name(uint32_t file) const { return files_.at(file).name; }
    const std::string& text(uint32_t file) const { return files_.at(file).text; }
    std::string_view line(uint32_t file, uint32_t line) const;
    size_t size() const { return files_.size(); }

private:
    struct File {
        std::string name, text;
        std::vector<uint32_t> line_starts;
    };
    std::vector<File> files_;
};

// Bounds on what a configuration with very many problems costs: diagnostics kept in memory (the
// counts stay exact), diagnostics printed, and the width of an echoed source line.
inline constexpr size_t kMaxKeptDiagnostics = 10'000;
inline constexpr size_t kMaxShownDiagnostics = 100;
inline constexpr size_t kMaxShownColumns = 200;

class Diagnostics {
public:
    void error(Loc loc, std::string path, std::string message);
    void warning(Loc loc, std::string path, std::string message);
    // A warning that a member waits for its public key: expected while a fleet is being built,
    // so printed as one summary line unless asked for each (render_all).
    void pending(Loc loc, std::string path, std::string message);
    bool has_errors() const { return errors_ > 0; }
    size_t errors() const { return errors_; }
    size_t warnings() const { return warnings_; }
    // Sorted by file and position (stable for golden tests), then in the order found.
    std::vector<Diagnostic> sorted() const;
    // The first kMaxKeptDiagnostics found; errors() and warnings() count all.
    const std::vector<Diagnostic>& all() const { return all_; }

private:
    void add(Diagnostic d);
    std::vector<Diagnostic> all_;
    size_t errors_ = 0;
    size_t warnings_ = 0;
};

// One diagnostic, netplan-style: "file:line:col: error: path: message", then the source line
// (control characters and invalid UTF-8 shown as '?', cut to kMaxShownColumns around the column
// with '…') and a caret under the column.
std::string render(const Diagnostic& d, const Sources& sources);
// How render_all shows the pending warnings: each like any other, as one line naming the
// members (`wg-fleet -v` shows each), or not at all (the sandbox makes the keys itself).
enum class Pending { each, summary, none };

// The diagnostics to print, in sorted order: warnings only when `warnings`, at most
// kMaxShownDiagnostics, then one line saying how many errors and warnings are not shown.
std::string render_all(const Diagnostics& diags, const Sources& sources, bool warnings = true, Pending pending = Pending::each);

// 'value' quoted for messages, with control characters escaped and long values shortened.
std::string quote(std::string_view value);

// Levenshtein distance, for the "did you mean" of a misspelt key or name.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` when it is close enough to be a typo of it (two edits, or a
// third of a long word, never the whole word), else nullopt. Ties go to the first.
std::optional<std::string> nearest_word(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace wgf::config
