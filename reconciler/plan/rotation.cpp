#include "plan/rotation.hpp"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

namespace wgf::plan {
namespace {

// Digits at text[at, at+n) as a number; nullopt unless all are digits.
std::optional<int> digits(std::string_view text, size_t at, size_t n) {
    if (at + n > text.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in(int y, int m) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<int64_t> parse_rfc3339(std::string_view text) {
    const std::string_view s = text;
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
    auto y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2), h = digits(s, 11, 2), mi = digits(s, 14, 2), se = digits(s, 17, 2);
    if (!y || !mo || !d || !h || !mi || !se || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    if (*mo < 1 || *mo > 12 || *d < 1 || *d > days_in(*y, *mo) || *h > 23 || *mi > 59 || *se > 60) return std::nullopt;
    size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return std::nullopt;
    }
    int offset = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        auto oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
        if (!oh || !om || i + 3 >= s.size() || s[i + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
        offset = (s[i] == '-' ? -1 : 1) * (*oh * 3600 + *om * 60);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    std::tm tm{};
    tm.tm_year = *y - 1900;
    tm.tm_mon = *mo - 1;
    tm.tm_mday = *d;
    tm.tm_hour = *h;
    tm.tm_min = *mi;
    tm.tm_sec = std::min(*se, 59);  // a leap second counts as the second before it
    return static_cast<int64_t>(timegm(&tm)) - offset;
}

std::string format_rfc3339(int64_t t) {
    std::tm tm{};
    const time_t tt = static_cast<time_t>(t);
    gmtime_r(&tt, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec);
}

std::optional<int64_t> parse_switch_time(std::string_view text, int64_t now, std::string* why) {
    auto fail = [&](std::string what) -> std::optional<int64_t> {
        if (why) *why = std::move(what);
        return std::nullopt;
    };
    if (text.starts_with('+')) {
        auto d = model::parse_duration(text.substr(1));
        if (!d) return fail(fmt::format("'{}' — a relative time is + and a duration, like +90s, +10m or +2h (units d, h, m, s)", text));
        return now + static_cast<int64_t>(*d);
    }
    auto t = parse_rfc3339(text);
    if (!t) return fail(fmt::format("'{}' — not a time: use RFC 3339 (2026-12-01T02:30:00Z) or +DURATION (+90s)", text));
    return t;
}

std::string format_next_key(const NextKey& next) {
    return fmt::format("public_key: {}\nswitch_at: {}\n", next.key.base64(), format_rfc3339(next.switch_at));
}

NextKeyText parse_next_key(std::string_view text) {
    NextKeyText out;
    auto fail = [&](size_t line, size_t col, std::string what) {
        out.error = fmt::format("line {}, column {}: {}", line, col, what);
        return out;
    };
    // Exactly two lines, each "NAME: VALUE", newline-terminated (the last newline optional).
    std::vector<std::string_view> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) nl = text.size();
        lines.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    static constexpr std::string_view kNames[] = {"public_key", "switch_at"};
    if (lines.size() < 2) return fail(lines.size() + 1, 1, fmt::format("expected the line \"{}: ...\"", kNames[lines.size()]));
    if (lines.size() > 2) return fail(3, 1, "expected the end of the file after switch_at");
    std::optional<model::Key> key;
    std::optional<int64_t> at;
    for (size_t i = 0; i < 2; ++i) {
        std::string_view l = lines[i];
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        const std::string_view name = kNames[i];
        if (!l.starts_with(name) || l.substr(name.size(), 2) != ": ")
            return fail(i + 1, 1, fmt::format("expected \"{}: \" at the start of the line", name));
        std::string_view value = l.substr(name.size() + 2);
        const size_t col = name.size() + 3;
        if (i == 0) {
            key = model::Key::from_base64(value);
            if (!key) return fail(i + 1, col, "not a base64 WireGuard public key (content not shown)");
        } else {
            at = parse_rfc3339(value);
            if (!at) return fail(i + 1, col, fmt::format("'{}' is not an RFC 3339 time such as 2026-12-01T02:30:00Z", value));
        }
    }
    out.next = NextKey{.key = *key, .switch_at = *at};
    return out;
}

std::string next_private_key_path(const std::string& key_file) { return key_file + ".next"; }

std::string next_key_path(const std::string& keys_dir, const std::string& fleet, const std::string& node) {
    return keys_dir + "/" + fleet + "/" + node + ".next.pub";
}

std::optional<PeerSwitch> switch_peer_key(model::HostState& desired, model::Labels& labels, const std::string& ifname,
                                          const std::string& node, const model::Key& key, std::string* why) {
    auto say = [&](std::string what) -> std::optional<PeerSwitch> {
        if (why) *why = std::move(what);
        return std::nullopt;
    };
    auto w = desired.interfaces.find(ifname);
    auto l = labels.interfaces.find(ifname);
    if (w == desired.interfaces.end() || l == labels.interfaces.end()) return say("no such interface");
    auto& names = l->second.peer_names;
    auto named = std::find_if(names.begin(), names.end(), [&](const auto& kv) { return kv.second == node; });
    if (named == names.end()) return say(fmt::format("{} is not a peer on {}", node, ifname));
    const model::Key old = named->first;
    if (old == key) return say("it has that key already");
    if (w->second.peers.count(key)) return say(fmt::format("another peer on {} has that key", ifname));
    auto entry = w->second.peers.extract(old);
    if (entry.empty()) return say(fmt::format("{} is not a peer on {}", node, ifname));
    entry.key() = key;
    entry.mapped().public_key = key;
    w->second.peers.insert(std::move(entry));
    names.erase(named);
    names.emplace(key, node);
    return PeerSwitch{.ifname = ifname, .node = node, .old_key = old, .new_key = key};
}

std::optional<std::string> key_age_warning(const std::string& fleet, const std::string& node, int64_t modified, int64_t now,
                                           uint64_t max_age, const std::string& source) {
    if (now < modified || static_cast<uint64_t>(now - modified) <= max_age) return std::nullopt;
    const uint64_t age = static_cast<uint64_t>(now - modified);
    // Days are the unit people rotate by; under a day, the exact duration.
    const std::string shown = age >= 86400 ? fmt::format("{}d", age / 86400) : model::format_duration(age);
    return fmt::format(
        "the key of {} in fleet {} is {} old ({} last changed {}); key_max_age is {}: run `wg-fleet rotate --fleet {}` on {}", node, fleet,
        shown, source, format_rfc3339(modified), model::format_duration(max_age), fleet, node);
}

}  // namespace wgf::plan
