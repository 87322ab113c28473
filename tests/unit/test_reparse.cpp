// config::reparse_edit against parse_yaml: whenever the edited part alone is parsed, the tree must
// equal the whole text's parse, locations included, and the configuration, diagnostics and
// desired state built from it must equal those of a full load. Checked on named edits (each
// taken, or each declined for its reason) and on random edits of every example, every invalid
// example and fuzz seed that parses as YAML, and a generated fleet.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "config/parse.hpp"
#include "config/reparse.hpp"
#include "config/tree.hpp"
#include "helpers.hpp"
#include "plan/render.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using test::slurp;
using config::Node;

namespace {

Node full_parse(const std::string& text, bool& clean) {
    config::Diagnostics d;
    Node n = config::parse_yaml(text, 0, d);
    clean = d.errors() == 0 && d.warnings() == 0;
    return n;
}

// Everything a load derives from a tree: the diagnostics of parse and validation as printed, and
// the desired state of (up to) the first eight nodes.
struct Derived {
    std::string diagnostics;
    std::vector<model::HostState> desired;
    bool operator==(const Derived&) const = default;
};

Derived derived(const std::string& text, Node tree) {
    config::Sources sources;
    sources.add("fleet.yaml", text);
    config::Diagnostics d;
    config::Parsed p = config::parse_tree(std::move(tree), d);
    Derived out{.diagnostics = config::render_all(d, sources), .desired = {}};
    if (d.has_errors()) return out;
    plan::Fleetwide fw(p.config);
    plan::validate(p.config, fw.plan, fw.index, p.tree, d);
    out.diagnostics = config::render_all(d, sources);
    if (d.has_errors()) return out;
    for (const auto& [node, fleets] : fw.index) {
        if (out.desired.size() == 8) break;
        out.desired.push_back(plan::render_host(fw, node).state);
    }
    return out;
}

struct Result {
    bool taken = false;
    bool clean = false;  // the new text parses without a diagnostic
    Node tree;           // the new tree, from whichever path
};

// Edits `old_text` (whose tree is `old_tree`) into `new_text` both ways and checks that they agree.
Result check_edit(const std::string& old_text, const Node& old_tree, const std::string& new_text, bool deep = false) {
    Result r;
    Node full = full_parse(new_text, r.clean);
    Node inc = old_tree;
    r.taken = config::reparse_edit(inc, old_text, new_text, 0);
    if (!r.taken) {
        REQUIRE(inc == old_tree);  // declined: left as it was
    } else {
        INFO("old:\n" << old_text << "\nnew:\n" << new_text);
        REQUIRE(r.clean);
        REQUIRE(inc == full);
        if (deep) REQUIRE(derived(new_text, inc) == derived(new_text, full));
    }
    r.tree = std::move(full);
    return r;
}

bool taken(const std::string& old_text, const std::string& new_text) {
    bool clean = false;
    Node old_tree = full_parse(old_text, clean);
    REQUIRE(clean);
    return check_edit(old_text, old_tree, new_text, true).taken;
}

const std::string kFleet = R"(# a fleet
domain: example.internal

fleets:
  mesh:
    port: 51820
    topology: hub
    controllers:
      server1:
        endpoint: vpn1.example.com
        public_key: sMqTxe7wMHnJNlS5uP7XFi2ev/UDeVdxIzYgNWf0rx8=
    peers:
      laptop:
        controller: server1
        public_key: e7xL7jDAVLRvOjHTnUUaOcVxiDtswzo8WFamIb9jwy4=
      # the phone
      phone:
        controller: server1
        public_key: 7FwP3pm/X5vfVG0CFu7vm3CwQB9vF6ml+ml/CpLQDu0=
        routes:
        - 10.0.0.0/24
      nas:
        controller: server1
        public_key: lKf9XvcOt0u5EWSOt+pnlWritorNFMYTQ2hfMtJvBjY=
        routes: [10.0.1.0/24]
)";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

// A fleet like tests/bench/gen_fleet.py's, with comments, lists and flow values among the peers.
std::string generated_fleet(int peers) {
    std::string out = "# generated\ndomain: example.internal\nfleets:\n  bench:\n    port: 51820\n    controllers:\n";
    out += "      server1:\n        endpoint: vpn1.example.com\n        public_key: sMqTxe7wMHnJNlS5uP7XFi2ev/UDeVdxIzYgNWf0rx8=\n";
    out += "    peers:\n";
    std::mt19937 rng(7);
    const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 1; i <= peers; ++i) {
        std::string key;
        for (int k = 0; k < 42; ++k) key += b64[rng() % 64];
        key += "Q=";
        if (i % 17 == 0) out += "      # a comment between peers\n";
        out += fmt::format("      peer-{:04}:\n        controller: server1\n        public_key: {}\n", i, key);
        if (i % 5 == 0) out += fmt::format("        routes: [10.{}.{}.0/24]\n", i / 256, i % 256);
        else if (i % 7 == 0) out += fmt::format("        routes:\n        - 10.{}.{}.0/24\n", 100 + i / 256, i % 256);
        if (i % 11 == 0) out += "\n";
    }
    return out;
}

// YAML in many styles at once, for random edits to land in: flow collections lined up like block
// ones, lists of maps, quoted keys, multi-line plain and quoted scalars, block scalars, comments at
// odd indentation, nulls, anchors and aliases.
const std::string kStyles = R"(top:
  flow:
    {
    a: 1,
    b: [x,
    y],
    c: {d: 2}
    }
  list:
  - name: one
    value: 1
  -   name: two
      value: 2
  - [3, 4]
  "quoted key": 'single'
  'other': "double
    continued"
  plain: a plain scalar
    that goes on
# a comment at column one
  empty:
  tilde: ~
  block: |
    text
      more

  folded: >-
    folded
    text
  anchored: &anc
    k: v
  alias: *anc
  nested:
    deeper:
      deepest: 1
      # indented comment
      sibling: 2
    seq:
      - 1
      - - 2
        - 3
last: 1
)";

const std::vector<std::string> kValues = {"1",
                                          "x",
                                          "fd00::/64",
                                          "[10.9.0.0/24]",
                                          "{a: 1}",
                                          "'q'",
                                          "\"d q\"",
                                          "",
                                          "~",
                                          "&a x",
                                          "*a",
                                          "|",
                                          ">-",
                                          "!!str x",
                                          "- x",
                                          "a: b",
                                          "10.1.0.0/24  # c",
                                          "[10.0.0.0/24, 10.1.0.0/24]",
                                          "vpn.example.com:51820",
                                          "null",
                                          "'open",
                                          "\"open",
                                          "[1,",
                                          "x #",
                                          "- - y"};
const std::vector<std::string> kLines = {"routes: [10.1.0.0/24]",
                                         "endpoint: host.example:51820",
                                         "- 10.2.0.0/24",
                                         "# comment",
                                         "",
                                         "{a: 1}",
                                         "new-peer:",
                                         "  controller: server1",
                                         "---",
                                         "...",
                                         "? k",
                                         ": v",
                                         "\tx: 1",
                                         "key: 'unterminated",
                                         "k: \"multi",
                                         "  line\"",
                                         "k: |",
                                         "  text",
                                         "x: y: z",
                                         "%YAML 1.1",
                                         "public_key: 7FwP3pm/X5vfVG0CFu7vm3CwQB9vF6ml+ml/CpLQDu0=",
                                         "a:",
                                         "'quoted key': 1",
                                         "-"};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text) {
        if (c == '\n') {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

std::string joined(const std::vector<std::string>& lines, bool final_newline) {
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        out += lines[i];
        if (i + 1 < lines.size() || final_newline) out += '\n';
    }
    return out;
}

std::string mutate(const std::string& text, std::mt19937& rng) {
    auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
    auto lines = lines_of(text);
    bool final_newline = text.empty() || text.back() == '\n';
    if (lines.empty()) lines.emplace_back("a: 1");
    const size_t at = pick(lines.size());
    auto indent_of = [&](size_t i) { return lines[i].find_first_not_of(' ') == std::string::npos ? 0 : lines[i].find_first_not_of(' '); };
    switch (rng() % 11) {
        case 0: {  // a value
            auto colon = lines[at].find(": ");
            if (colon == std::string::npos) colon = lines[at].size();
            lines[at] = lines[at].substr(0, colon) + ": " + kValues[pick(kValues.size())];
            break;
        }
        case 1:
            lines.erase(lines.begin() + static_cast<long>(at), lines.begin() + static_cast<long>(std::min(lines.size(), at + 1 + pick(4))));
            break;
        case 2: lines.insert(lines.begin() + static_cast<long>(at), lines[at]); break;
        case 3: {
            const size_t in = indent_of(at) + (rng() % 3 == 0 ? 2 : 0);
            lines.insert(lines.begin() + static_cast<long>(at + 1), std::string(in, ' ') + kLines[pick(kLines.size())]);
            break;
        }
        case 4: {
            const int by = std::array{-2, -1, 1, 2}[pick(4)];
            const size_t in = indent_of(at);
            lines[at] = std::string(static_cast<size_t>(std::max<long>(0, static_cast<long>(in) + by)), ' ') + lines[at].substr(in);
            break;
        }
        case 5: {
            const std::string chars = " :#-\t{}[]\"'ax1\n&*|";
            if (!lines[at].empty()) lines[at][pick(lines[at].size())] = chars[pick(chars.size())];
            break;
        }
        case 6:
            if (at + 1 < lines.size()) std::swap(lines[at], lines[at + 1]);
            break;
        case 7: {  // a block of lines copied elsewhere (a peer, often)
            const size_t n = 2 + pick(3);
            std::vector<std::string> block(lines.begin() + static_cast<long>(at),
                                           lines.begin() + static_cast<long>(std::min(lines.size(), at + n)));
            const size_t to = pick(lines.size() + 1);
            lines.insert(lines.begin() + static_cast<long>(to), block.begin(), block.end());
            break;
        }
        case 8: {  // a key renamed
            auto colon = lines[at].find(':');
            if (colon != std::string::npos && colon > 0) lines[at].insert(colon, "-x");
            break;
        }
        case 9: final_newline = !final_newline; break;
        default: {  // a key line and its value lines removed together (a peer deleted)
            const size_t in = indent_of(at);
            size_t end = at + 1;
            while (end < lines.size() && (lines[end].empty() || indent_of(end) > in)) ++end;
            lines.erase(lines.begin() + static_cast<long>(at), lines.begin() + static_cast<long>(end));
            break;
        }
    }
    return joined(lines, final_newline);
}

// Chains of random edits from `base`; each edit of a text that still parses starts from the tree
// the last step produced (the incremental one when it was taken). Returns {taken, edits}.
std::pair<size_t, size_t> random_edits(const std::string& base, unsigned seed, size_t edits, size_t deep_every) {
    std::mt19937 rng(seed);
    bool clean = false;
    std::string old_text = base;
    Node old_tree = full_parse(old_text, clean);
    if (!clean) return {0, 0};
    size_t n_taken = 0;
    for (size_t i = 0; i < edits; ++i) {
        std::string new_text = mutate(old_text, rng);
        Result r = check_edit(old_text, old_tree, new_text, deep_every && i % deep_every == 0);
        n_taken += r.taken;
        if (r.clean) {
            old_text = std::move(new_text);
            old_tree = std::move(r.tree);
        } else if (rng() % 8 == 0) {
            // Back to the start now and then, so edits keep landing on a real fleet.
            old_text = base;
            old_tree = full_parse(old_text, clean);
        }
    }
    return {n_taken, edits};
}

}  // namespace

TEST_CASE("reparse: edits inside entries are parsed alone and give the whole text's tree", "[reparse]") {
    CHECK(taken(kFleet, replaced(kFleet, "endpoint: vpn1.example.com", "endpoint: vpn2.example.com:51000")));
    // A setting added to a peer, and removed again.
    CHECK(taken(kFleet, replaced(kFleet, "      nas:\n", "      nas:\n        endpoint: nas.example.com\n")));
    CHECK(taken(kFleet, replaced(kFleet, "        routes: [10.0.1.0/24]\n", "")));
    // A list item under a key at the key's indentation.
    CHECK(taken(kFleet, replaced(kFleet, "        - 10.0.0.0/24\n", "        - 10.0.0.0/24\n        - 10.0.2.0/24\n")));
    // A peer renamed, added between two others, added at the end, deleted.
    CHECK(taken(kFleet, replaced(kFleet, "      phone:", "      phone2:")));
    CHECK(
        taken(kFleet, replaced(kFleet, "      nas:\n",
                               "      tv:\n        controller: server1\n        public_key: QV3W22Xf6N0bG2c4auvSzbF1JMIpT+o1pS6a1ohIOZI=\n"
                               "      nas:\n")));
    CHECK(taken(kFleet, kFleet + "      tv:\n        controller: server1\n"));
    CHECK(taken(
        kFleet,
        replaced(kFleet, "      laptop:\n        controller: server1\n        public_key: e7xL7jDAVLRvOjHTnUUaOcVxiDtswzo8WFamIb9jwy4=\n",
                 "")));
    // Lines added before later entries move every location after them.
    CHECK(taken(kFleet, replaced(kFleet, "    port: 51820\n", "    port: 51820\n    # more\n    mtu: 1420\n")));
    // A top-level key.
    CHECK(taken(kFleet, replaced(kFleet, "domain: example.internal", "domain: example.org")));
}

// Forwards as a block sequence: `count` one-line flow mappings, and three written as block
// mappings under an indentless sequence of another key.
std::string forwards_file(int count) {
    std::string out = "# forwards\nforwards:\n";
    for (int i = 0; i < count; ++i)
        out += fmt::format("  - {{ name: f{}, node: edge1, proto: {}, port: {}, to: 10.99.0.{}, to_port: 80 }}\n", i, i % 2 ? "udp" : "tcp",
                           1024 + i, i % 250 + 1);
    out +=
        "http_routes:\n- name: web\n  host: web.example\n  to: svc\n\n- name: api\n  host: api.example\n  # a comment\n  to: svc\n"
        "- name: old\n  host: old.example\n  to: svc\nlast: 1\n";
    return out;
}

TEST_CASE("reparse: edits of a block sequence's items are parsed by the items", "[reparse]") {
    const std::string f = forwards_file(6);
    const std::string f3 = "  - { name: f3, node: edge1, proto: udp, port: 1027, to: 10.99.0.4, to_port: 80 }\n";
    // One forward changed, added in the middle, added at the end, removed.
    CHECK(taken(f, replaced(f, "port: 1027", "port: 2027")));
    CHECK(taken(f, replaced(f, f3, f3 + "  - { name: new, node: edge1, proto: tcp, port: 9000, to: 10.99.0.9 }\n")));
    CHECK(taken(f, replaced(f, "http_routes:", "  - { name: new, node: edge1, proto: tcp, port: 9000, to: 10.99.0.9 }\nhttp_routes:")));
    CHECK(taken(f, replaced(f, f3, "")));
    // The first item removed: the sequence is placed at its new first dash.
    CHECK(taken(f, replaced(f, "  - { name: f0,", "  - { name: g0,")));
    CHECK(taken(f, f.substr(0, f.find("  - { name: f0")) + f.substr(f.find("  - { name: f1"))));
    // Items that are block mappings, in a sequence at its key's indentation: a setting changed,
    // added, an item added after the last and one removed with its comment.
    CHECK(taken(f, replaced(f, "host: api.example", "host: api2.example")));
    CHECK(taken(f, replaced(f, "  host: web.example\n", "  host: web.example\n  port: 8080\n")));
    CHECK(taken(f, replaced(f, "last: 1\n", "- name: more\n  to: svc\nlast: 1\n")));
    CHECK(taken(f, replaced(f, "- name: api\n  host: api.example\n  # a comment\n  to: svc\n", "")));
    // In a file of 2,000 forwards, where the key `forwards` is far more than a quarter of it.
    const std::string big = forwards_file(2000);
    CHECK(taken(big, replaced(big, "port: 1500,", "port: 31500,")));
    CHECK(taken(big, replaced(big, "http_routes:", "  - { name: new, node: edge1, proto: tcp, port: 9000, to: 10.99.0.9 }\nhttp_routes:")));

    // A null item is placed just after its dash, on its line.
    CHECK(taken(big, replaced(big, "http_routes:", "  -\nhttp_routes:")));
    // Not taken: an item below its dash, a line at the dashes' column that is no item, an anchor.
    CHECK_FALSE(taken(big, replaced(big, "http_routes:", "  -\n    name: x\nhttp_routes:")));
    CHECK_FALSE(taken(big, replaced(big, "http_routes:", "  x: 1\nhttp_routes:")));
    CHECK_FALSE(taken(big, replaced(big, "port: 1500,", "port: &p 1500,")));
    // Every item removed: the sequence's key takes the edit (its value becomes a null).
    const std::string one = "forwards:\n  - {name: a}\nlast: 1\n";
    CHECK(taken(one, replaced(one, "  - {name: a}\n", "")));
}

TEST_CASE("reparse: edits whose part cannot stand alone are left to the whole parse", "[reparse]") {
    // A key the edit duplicates, and a syntax error.
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "      phone:", "      laptop:")));
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "endpoint: vpn1.example.com", "endpoint: 'vpn1.example.com")));
    // Anchors, aliases, tags and block scalars.
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "endpoint: vpn1.example.com", "endpoint: &e vpn1.example.com")));
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "port: 51820", "port: !!str 51820")));
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "endpoint: vpn1.example.com", "endpoint: |\n          vpn1.example.com")));
    // A second document, and a document end.
    CHECK_FALSE(taken(kFleet, kFleet + "---\nx: 1\n"));
    CHECK_FALSE(taken(kFleet, replaced(kFleet, "domain: example.internal\n", "domain: example.internal\n...\n")));
    // Line breaks libyaml counts but a '\n' split does not, and a byte order mark.
    std::string crlf = kFleet;
    for (size_t at = crlf.find('\n'); at != std::string::npos; at = crlf.find('\n', at + 2)) crlf.insert(at, "\r");
    CHECK_FALSE(taken(crlf, replaced(crlf, "vpn1.example.com", "vpn2.example.com")));
    CHECK_FALSE(taken("\xef\xbb\xbf" + kFleet, "\xef\xbb\xbf" + replaced(kFleet, "vpn1.example.com", "vpn2.example.com")));

    // In a large file the mapping that would hold the edit is too large to be the part: a key of
    // the fleet after its peers, an edit inside a flow mapping.
    const std::string big = generated_fleet(300);
    CHECK_FALSE(taken(big, big + "    mtu: 1400\n"));
    std::string flow = "fleets: {mesh: {port: 51820,\n";
    for (int i = 0; i < 2000; ++i) flow += fmt::format("  k{}: {{a: 1}},\n", i);
    flow += "  mtu: 1420}}\n";
    CHECK_FALSE(taken(flow, replaced(flow, "mtu: 1420", "mtu: 1400")));
    // A flow mapping written one key per line, its keys lined up under its brace: in flow context
    // "x,y" is two keys, in a block one scalar. Taken only as the whole entry around it.
    const std::string lined_up = "a:\n  {\n  b: 1,\n  c: 2\n  }\nd: 1\n";
    CHECK(taken(lined_up, replaced(lined_up, "b: 1,", "b: x,y,")));
    // The same edits in a small file are taken by the mapping around them, which is small.
    CHECK(taken(kFleet, replaced(kFleet, "        routes: [10.0.1.0/24]\n", "        routes: [10.0.1.0/24]\n    mtu: 1400\n")));
    // Every setting of a peer deleted: the peer's value becomes a null, its mapping is gone.
    CHECK(taken(kFleet,
                replaced(kFleet, "        controller: server1\n        public_key: e7xL7jDAVLRvOjHTnUUaOcVxiDtswzo8WFamIb9jwy4=\n", "")));
    const size_t settings = big.find("      peer-0002:\n") + 17;
    CHECK(taken(big, big.substr(0, settings) + big.substr(big.find("      peer-0003:"))));
}

TEST_CASE("reparse: random edits of the examples, invalid examples, fuzz seeds and a generated fleet agree with the whole parse",
          "[reparse]") {
    const std::vector<std::filesystem::path> files = test::repo_yaml_files({"examples", "examples/invalid", "tests/fuzz/corpus"});
    REQUIRE(files.size() >= 30);
    size_t n_taken = 0, n_edits = 0, used = 0;
    unsigned seed = 1;
    for (const auto& f : files) {
        auto [t, e] = random_edits(slurp(f), seed++, 150, 10);
        n_taken += t;
        n_edits += e;
        used += e > 0;
    }
    for (auto [text, seed_of] : {std::pair{generated_fleet(300), 99U}, std::pair{forwards_file(300), 98U}}) {
        auto [t, e] = random_edits(text, seed_of, 400, 25);
        REQUIRE(e > 0);
        n_taken += t;
        n_edits += e;
    }
    for (unsigned k = 0; k < 4; ++k) {
        auto [st, se] = random_edits(kStyles, 500 + k, 300, 0);
        REQUIRE(se > 0);
        n_taken += st;
        n_edits += se;
    }
    INFO(n_taken << " of " << n_edits << " edits of " << used << " files were parsed by their part");
    CHECK(used >= 25);
    // The comparison above is the test; this makes sure it compared many incremental trees.
    CHECK(n_taken * 4 >= n_edits);
}
