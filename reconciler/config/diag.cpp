#include "config/diag.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace wgf::config {

uint32_t Sources::add(std::string name, std::string text) {
    File f{std::move(name), std::move(text), {0}};
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
    if (start >= f.text.size()) return {};
    auto end = f.text.find('\n', start);
    std::string_view l(f.text.data() + start, (end == std::string::npos ? f.text.size() : end) - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    return l;
}

void Diagnostics::error(Loc loc, std::string path, std::string message) {
    all_.push_back({Severity::error, loc, std::move(path), std::move(message)});
    ++errors_;
}

void Diagnostics::warning(Loc loc, std::string path, std::string message) {
    all_.push_back({Severity::warning, loc, std::move(path), std::move(message)});
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
    if (!d.path.empty()) out += d.path + ": ";
    out += d.message;
    out += '\n';
    if (d.loc.known() && d.loc.line) {
        auto line = sources.line(d.loc.file, d.loc.line);
        if (!line.empty()) {
            out += "    ";
            out += line;
            out += "\n    ";
            // Keep tabs so the caret lines up under the same column.
            for (uint32_t i = 0; i + 1 < d.loc.col && i < line.size(); ++i) out += line[i] == '\t' ? '\t' : ' ';
            out += "^\n";
        }
    }
    return out;
}

std::string render_all(const Diagnostics& diags, const Sources& sources) {
    std::string out;
    for (const auto& d : diags.sorted()) out += render(d, sources);
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

}  // namespace wgf::config
