#include "plan/unified_diff.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace wgf::plan {
namespace {

struct Lines {
    std::vector<std::string_view> text;
    bool last_has_newline = true;
};

Lines split(std::string_view s) {
    Lines out;
    size_t start = 0;
    while (start < s.size()) {
        size_t nl = s.find('\n', start);
        if (nl == std::string_view::npos) {
            out.text.push_back(s.substr(start));
            out.last_has_newline = false;
            break;
        }
        out.text.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

enum class Edit : char { keep = ' ', remove = '-', add = '+' };

// Past this many differences the trace of Myers' search (quadratic in them) costs more than a
// shortest script is worth: the middle is then replaced whole.
constexpr long kMaxEdits = 2000;

// A shortest edit script turning a[0..n) into b[0..m) (Myers, "An O(ND) Difference Algorithm"),
// or removing all of a and adding all of b when it needs more than kMaxEdits edits.
std::vector<Edit> middle_script(const std::string_view* a, long n, const std::string_view* b, long m) {
    const long max = std::min(n + m, kMaxEdits);
    const long off = max + 1;
    std::vector<long> v(static_cast<size_t>(2 * max + 3), 0);
    std::vector<std::vector<long>> trace;
    long found = -1;
    for (long d = 0; d <= max && found < 0; ++d) {
        trace.push_back(v);
        for (long k = -d; k <= d; k += 2) {
            long x = (k == -d || (k != d && v[static_cast<size_t>(off + k - 1)] < v[static_cast<size_t>(off + k + 1)]))
                         ? v[static_cast<size_t>(off + k + 1)]
                         : v[static_cast<size_t>(off + k - 1)] + 1;
            long y = x - k;
            while (x < n && y < m && a[x] == b[y]) ++x, ++y;
            v[static_cast<size_t>(off + k)] = x;
            if (x >= n && y >= m) {
                found = d;
                break;
            }
        }
    }
    std::vector<Edit> script;
    if (found < 0) {
        script.assign(static_cast<size_t>(n), Edit::remove);
        script.insert(script.end(), static_cast<size_t>(m), Edit::add);
        return script;
    }
    // Walk back from (n, m) through the saved fronts, each step one edit plus its snake.
    long x = n, y = m;
    for (long d = found; d > 0; --d) {
        const std::vector<long>& pv = trace[static_cast<size_t>(d)];
        const long k = x - y;
        const bool down = k == -d || (k != d && pv[static_cast<size_t>(off + k - 1)] < pv[static_cast<size_t>(off + k + 1)]);
        const long pk = down ? k + 1 : k - 1;
        const long px = pv[static_cast<size_t>(off + pk)], py = px - pk;
        // The snake after the edit starts one step below (an addition) or right (a removal).
        const long sx = down ? px : px + 1, sy = down ? py + 1 : py;
        while (x > sx && y > sy) script.push_back(Edit::keep), --x, --y;
        script.push_back(down ? Edit::add : Edit::remove);
        x = px, y = py;
    }
    while (x > 0 && y > 0) script.push_back(Edit::keep), --x, --y;
    std::reverse(script.begin(), script.end());
    return script;
}

// "l,s" as diff writes a range: s omitted when 1; an empty range names the line before it.
std::string range(size_t start, size_t count) {
    if (count == 1) return fmt::format("{}", start + 1);
    return fmt::format("{},{}", count == 0 ? start : start + 1, count);
}

}  // namespace

std::string unified_diff(std::string_view old_text, std::string_view new_text, std::string_view old_label, std::string_view new_label,
                         size_t context) {
    if (old_text == new_text) return {};
    const Lines a = split(old_text), b = split(new_text);
    // A last line that differs only in its newline is a different line.
    auto line = [](const Lines& l, size_t i) { return std::pair{l.text[i], i + 1 == l.text.size() && !l.last_has_newline}; };
    const size_t n = a.text.size(), m = b.text.size();
    size_t pre = 0;
    while (pre < n && pre < m && line(a, pre) == line(b, pre)) ++pre;
    size_t suf = 0;
    while (suf < n - pre && suf < m - pre && line(a, n - 1 - suf) == line(b, m - 1 - suf)) ++suf;
    std::vector<Edit> script(pre, Edit::keep);
    {
        // The middle's lines with the missing newline folded in, so a last line without one never
        // equals the same text with one.
        std::vector<std::string> ak, bk;
        for (size_t i = pre; i < n - suf; ++i) ak.push_back(std::string(a.text[i]) + (line(a, i).second ? "\n\\" : ""));
        for (size_t i = pre; i < m - suf; ++i) bk.push_back(std::string(b.text[i]) + (line(b, i).second ? "\n\\" : ""));
        std::vector<std::string_view> av(ak.begin(), ak.end()), bv(bk.begin(), bk.end());
        auto mid = middle_script(av.data(), static_cast<long>(av.size()), bv.data(), static_cast<long>(bv.size()));
        script.insert(script.end(), mid.begin(), mid.end());
    }
    script.insert(script.end(), suf, Edit::keep);

    // Each edit with its position in a and b.
    struct Step {
        Edit e;
        size_t ai, bi;
    };
    std::vector<Step> steps;
    size_t ai = 0, bi = 0;
    for (Edit e : script) {
        steps.push_back({e, ai, bi});
        if (e != Edit::add) ++ai;
        if (e != Edit::remove) ++bi;
    }
    std::string out = fmt::format("--- {}\n+++ {}\n", old_label, new_label);
    auto emit = [&](const Lines& l, size_t i, char mark) {
        out += mark;
        out += l.text[i];
        out += '\n';
        if (i + 1 == l.text.size() && !l.last_has_newline) out += "\\ No newline at end of file\n";
    };
    size_t i = 0;
    while (i < steps.size()) {
        while (i < steps.size() && steps[i].e == Edit::keep) ++i;
        if (i == steps.size()) break;
        // A hunk: from `context` lines before this change to `context` lines after the last change
        // that is at most 2 * context unchanged lines from the next.
        const size_t begin = i >= context ? i - context : 0;
        size_t end = i;
        for (;;) {
            while (end < steps.size() && steps[end].e != Edit::keep) ++end;
            size_t next = end;
            while (next < steps.size() && steps[next].e == Edit::keep) ++next;
            if (next < steps.size() && next - end <= 2 * context) end = next;
            else {
                end = std::min(end + context, steps.size());
                break;
            }
        }
        size_t na = 0, nb = 0;
        for (size_t j = begin; j < end; ++j) {
            na += steps[j].e != Edit::add;
            nb += steps[j].e != Edit::remove;
        }
        out += fmt::format("@@ -{} +{} @@\n", range(steps[begin].ai, na), range(steps[begin].bi, nb));
        for (size_t j = begin; j < end; ++j) {
            const Step& s = steps[j];
            if (s.e == Edit::add) emit(b, s.bi, '+');
            else emit(a, s.ai, static_cast<char>(s.e));
        }
        i = end;
    }
    return out;
}

}  // namespace wgf::plan
