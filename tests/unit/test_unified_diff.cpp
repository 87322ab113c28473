// plan::unified_diff against its real consumer: `patch` must turn the old text into the new one
// with it, for many generated pairs (lines moved, added, removed, with and without a last
// newline). One small case is also compared with the text GNU `diff -u` writes.

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "../linux_unit/temp_dir.hpp"
#include "plan/unified_diff.hpp"

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// The text `patch` makes of `old_text` with `diff`; nullopt when patch refuses the diff.
std::optional<std::string> patched(const wgf::test::TempDir& t, const std::string& old_text, const std::string& diff) {
    write(t.path / "old", old_text);
    write(t.path / "diff", diff);
    std::error_code ec;
    fs::remove(t.path / "out", ec);
    const std::string cmd = "patch --quiet --force -o '" + (t.path / "out").string() + "' '" + (t.path / "old").string() + "' < '" +
                            (t.path / "diff").string() + "' > /dev/null 2>&1";
    int rc = std::system(cmd.c_str());
    if (rc != 0) return std::nullopt;
    return wgf::test::slurp(t.path / "out");
}

std::string random_text(std::mt19937& rng, const std::vector<std::string>& base) {
    std::string out;
    std::uniform_int_distribution<int> op(0, 9);
    for (const auto& l : base) {
        int o = op(rng);
        if (o == 0) continue;  // removed
        if (o == 1) out += "inserted " + std::to_string(rng() % 5) + "\n";
        out += l + "\n";
    }
    if (op(rng) < 3) out += "tail " + std::to_string(rng() % 3) + "\n";
    // Sometimes no newline at the end.
    if (!out.empty() && op(rng) < 2) out.pop_back();
    return out;
}

}  // namespace

TEST_CASE("unified_diff: equal texts give no diff", "[unified_diff]") {
    CHECK(wgf::plan::unified_diff("a\nb\n", "a\nb\n", "x", "y").empty());
    CHECK(wgf::plan::unified_diff("", "", "x", "y").empty());
}

TEST_CASE("unified_diff: the text diff -u writes for a small change", "[unified_diff]") {
    wgf::test::TempDir t;
    const std::string a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", b = "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n";
    write(t.path / "a", a);
    write(t.path / "b", b);
    // GNU diff's own output, its timestamps cut from the two header lines.
    const std::string cmd = "cd '" + t.path.string() + "' && diff -u --label a --label b a b > u; test $? = 1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(wgf::plan::unified_diff(a, b, "a", "b") == wgf::test::slurp(t.path / "u"));
}

TEST_CASE("unified_diff: patch turns the old text into the new one", "[unified_diff]") {
    wgf::test::TempDir t;
    std::mt19937 rng(12);
    std::vector<std::string> base;
    base.reserve(40);
    for (int i = 0; i < 40; ++i) base.push_back("line " + std::to_string(i % 13));  // repeated lines
    for (int round = 0; round < 150; ++round) {
        const std::string a = random_text(rng, base), b = random_text(rng, base);
        const std::string d = wgf::plan::unified_diff(a, b, "old", "new", static_cast<size_t>(round % 4));
        INFO("old:\n" << a << "\nnew:\n" << b << "\ndiff:\n" << d);
        if (a == b) {
            CHECK(d.empty());
            continue;
        }
        // patch needs context to place hunks safely; with none it still applies by line number.
        auto out = patched(t, a, d);
        REQUIRE(out.has_value());
        CHECK(*out == b);
    }
    // From nothing and to nothing.
    for (auto [a, b] : {std::pair<std::string, std::string>{"", "x\ny\n"}, {"x\ny\n", ""}, {"x", "x\n"}, {"x\n", "x"}}) {
        auto out = patched(t, a, wgf::plan::unified_diff(a, b, "old", "new"));
        REQUIRE(out.has_value());
        CHECK(*out == b);
    }
}

TEST_CASE("unified_diff: a wholly rewritten long text is still a valid patch", "[unified_diff]") {
    wgf::test::TempDir t;
    std::string a, b;
    for (int i = 0; i < 3000; ++i) a += "a" + std::to_string(i) + "\n", b += "b" + std::to_string(i) + "\n";
    auto out = patched(t, a, wgf::plan::unified_diff(a, b, "old", "new"));
    REQUIRE(out.has_value());
    CHECK(*out == b);
}
