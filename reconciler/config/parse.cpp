#include "config/parse.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <span>
#include <type_traits>

#include <fmt/format.h>

namespace wgf::config {
namespace {

using model::Config;
using model::Fleet;
using model::Member;
namespace m = wgf::model;

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (auto w : words) out += (out.empty() ? "" : ", ") + std::string(w);
    return out;
}

// Where the walker is in the document: a chain of keys and list indexes up to the root, each
// level on the stack of the code that walks it. The text ("fleets.mesh.peers.laptop1") is built
// only when a diagnostic needs it, not for every node of a large file.
class Path {
public:
    Path() = default;  // the document root
    Path(const Path& parent, std::string_view key) : parent_(&parent), key_(key) {}
    Path(const Path& parent, size_t index) : parent_(&parent), index_(index) {}

    std::string str() const {
        if (!parent_) return "";
        return index_ ? index_path(parent_->str(), *index_) : join_path(parent_->str(), key_);
    }

private:
    const Path* parent_ = nullptr;
    std::string_view key_;
    std::optional<size_t> index_;
};

// Walks the tree with the schema's expectations, reporting every mismatch and carrying on.
class Walker {
public:
    Walker(Diagnostics& d, Broken& broken) : d_(d), broken_(broken) {}

    // What validation must skip besides the paths of the errors (see Broken).
    Broken& broken() { return broken_; }

    void error(const Loc& loc, const Path& path, std::string msg) {
        std::string p = path.str();
        broken_.add(p);
        d_.error(loc, std::move(p), std::move(msg));
    }

    bool is_map(const Node& n, const Path& path, bool null_ok) {
        if (n.is_map() || (null_ok && n.is_null())) return true;
        error(n.loc, path, fmt::format("expected a map, got {}{}", kind_name(n), scalar_suffix(n)));
        return false;
    }

    // Reports a key its mapping does not accept, with the nearest allowed key when one is close
    // (else the whole list, in the order given).
    void unknown_key(const Entry& e, const Path& path, std::span<const std::string_view> allowed) {
        auto best = nearest_word(e.key, std::vector<std::string_view>(allowed.begin(), allowed.end()));
        // The key it stands for is unset: a default in its place must not be checked, and the
        // members under a misspelt controllers: or peers: are no unknown nodes.
        if (best) broken_.add(join_path(path.str(), *best));
        if (best && (*best == "controllers" || *best == "peers") && e.value.is_map())
            for (const auto& m : e.value.map) broken_.add_node(m.key);
        std::string hint = !best ? fmt::format("allowed keys here: {}", join(allowed)) : fmt::format("did you mean '{}'?", *best);
        error(e.key_loc, Path(path, e.key), fmt::format("unknown key {} — {}", quote(e.key), hint));
    }

    // Whether map `n` at `path` lacks `key` and no misspelt key already said so ("did you mean").
    bool missing(const Node& n, const Path& path, std::string_view key) { return !n.find(key) && !broken_.at(Path(path, key).str()); }

    // The scalar's text, or null (reported) when the node is not a scalar.
    const std::string* str(const Node& n, const Path& path) {
        if (n.is_scalar()) return &n.scalar;
        error(n.loc, path, fmt::format("expected a string, got {}", kind_name(n)));
        return nullptr;
    }

    std::optional<uint64_t> uint(const Node& n, const Path& path, uint64_t lo, uint64_t hi, bool hex_ok = false) {
        if (!n.is_scalar()) {
            error(n.loc, path, fmt::format("expected an integer {}..{}, got {}", lo, hi, kind_name(n)));
            return std::nullopt;
        }
        const std::string& s = n.scalar;
        uint64_t v = 0;
        bool parsed = false;
        if (!n.quoted) {
            int base = 10;
            std::string_view digits = s;
            if (hex_ok && digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
                digits.remove_prefix(2);
                base = 16;
            }
            auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
            parsed = !digits.empty() && ec == std::errc() && p == digits.data() + digits.size();
            if (ec == std::errc::result_out_of_range) {
                error(n.loc, path, fmt::format("{} — must be {}..{}", quote(s), lo, hi));
                return std::nullopt;
            }
        } else if (hex_ok && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
            auto [p, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), v, 16);
            parsed = ec == std::errc() && p == s.data() + s.size();
        }
        if (!parsed) {
            error(n.loc, path, fmt::format("{} — expected an integer {}..{}", quote(s), lo, hi));
            return std::nullopt;
        }
        if (v < lo || v > hi) {
            error(n.loc, path, fmt::format("{} — must be {}..{}", quote(s), lo, hi));
            return std::nullopt;
        }
        return v;
    }

    std::optional<bool> boolean(const Node& n, const Path& path) {
        if (n.is_scalar() && !n.quoted && (n.scalar == "true" || n.scalar == "false")) return n.scalar == "true";
        error(n.loc, path, fmt::format("{} — expected true or false", n.is_scalar() ? quote(n.scalar) : kind_name(n)));
        return std::nullopt;
    }

    template <class T, class F>
    std::optional<T> typed(const Node& n, const Path& path, F&& parse_fn, std::string_view what) {
        const std::string* s = str(n, path);
        if (!s) return std::nullopt;
        std::string why;
        auto v = parse_fn(*s, &why);
        if (!v) error(n.loc, path, fmt::format("{} — {}{}", quote(*s), what, why.empty() ? "" : ": " + why));
        return v;
    }

    std::optional<std::string> name(const Node& n, const Path& path, std::string_view what) {
        const std::string* s = str(n, path);
        if (!s) return std::nullopt;
        if (!m::valid_node_name(*s)) {
            error(n.loc, path, bad_name(*s, what));
            return std::nullopt;
        }
        return *s;
    }

    // The message for a fleet or node name that is not one, written as a value or as a key.
    static std::string bad_name(std::string_view s, std::string_view what) {
        return fmt::format("{} — {} names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters", quote(s),
                           what);
    }

    // Whether `pf`, parsed from scalar `n`, is a network; if host bits are set, reports the
    // network the text probably means.
    bool network(const Node& n, const Path& path, const m::Prefix& pf) {
        if (pf.is_network()) return true;
        error(n.loc, path, fmt::format("{} — host bits are set; did you mean {}?", quote(n.scalar), pf.masked().str()));
        return false;
    }

    std::optional<std::string> abs_path(const Node& n, const Path& path) {
        const std::string* s = str(n, path);
        if (!s) return std::nullopt;
        if (s->empty() || (*s)[0] != '/') {
            error(n.loc, path, fmt::format("{} — must be an absolute path", quote(*s)));
            return std::nullopt;
        }
        return *s;
    }

private:
    static std::string scalar_suffix(const Node& n) { return n.is_scalar() ? " " + quote(n.scalar) : ""; }
    Diagnostics& d_;
    Broken& broken_;
};

auto parse_ip = [](const std::string& s, std::string* why) {
    auto a = m::IpAddr::parse(s);
    if (!a && why) *why = "";
    return a;
};
auto parse_prefix = [](const std::string& s, std::string* why) { return m::Prefix::parse(s, why); };
auto parse_endpoint = [](const std::string& s, std::string* why) { return m::Endpoint::parse(s, why); };
auto parse_key = [](const std::string& s, std::string* why) { return m::Key::from_base64(s, why); };

std::optional<uint64_t> parse_suffix_groups(std::string_view s) {
    // "6987:50a0:9b93:4337": four hex groups of up to four digits.
    uint64_t v = 0;
    int groups = 0;
    size_t i = 0;
    while (i <= s.size() && groups < 4) {
        auto colon = s.find(':', i);
        auto g = s.substr(i, colon == std::string_view::npos ? std::string_view::npos : colon - i);
        if (g.empty() || g.size() > 4) return std::nullopt;
        uint64_t part = 0;
        auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), part, 16);
        if (ec != std::errc() || p != g.data() + g.size()) return std::nullopt;
        v = (v << 16) | part;
        ++groups;
        if (colon == std::string_view::npos) {
            i = s.size() + 1;
            break;
        }
        i = colon + 1;
    }
    if (groups != 4 || i != s.size() + 1) return std::nullopt;
    return v;
}

enum class Need : uint8_t { optional, required };

// One key of a YAML mapping and what its value sets in T. Each mapping is parsed from one table
// of these, so the keys it accepts (and suggests for a misspelt one) are exactly the keys it
// parses; the table's order is the order "allowed keys here" lists them in.
template <class T>
struct Field {
    std::string_view key;
    void (*parse)(Walker& w, const Node& value, const Path& path, T& out);
    Need need = Need::optional;  // list items: a missing required key is reported
};

template <class T>
using Table = std::span<const Field<T>>;

template <class T>
const Field<T>* find_field(Table<T> table, std::string_view key) {
    for (const auto& f : table)
        if (f.key == key) return &f;
    return nullptr;
}

// Only when a diagnostic needs them.
template <class T>
std::vector<std::string_view> keys_of(Table<T> table) {
    std::vector<std::string_view> out;
    out.reserve(table.size());
    for (const auto& f : table) out.push_back(f.key);
    return out;
}

// Reports every key of map `n` that the table does not name; returns how many.
template <class T>
size_t check_keys(Walker& w, const Node& n, const Path& path, Table<T> table) {
    size_t unknown = 0;
    for (const auto& e : n.map) {
        if (find_field(table, e.key)) continue;
        w.unknown_key(e, path, keys_of(table));
        ++unknown;
    }
    return unknown;
}

// Parses each entry of map `n` into `out` with its table entry, reporting keys the table does
// not name.
template <class T>
void parse_fields(Walker& w, const Node& n, const Path& path, std::type_identity_t<Table<T>> table, T& out) {
    for (const auto& e : n.map) {
        if (const Field<T>* f = find_field(table, e.key)) f->parse(w, e.value, Path(path, e.key), out);
        else w.unknown_key(e, path, keys_of(table));
    }
}

void parse_routes(Walker& w, const Node& n, const Path& path, std::vector<m::Prefix>& out) {
    if (!n.is_seq()) {
        w.error(n.loc, path, fmt::format("expected a list of CIDRs, got {}", kind_name(n)));
        return;
    }
    for (size_t i = 0; i < n.seq.size(); ++i) {
        const Path p(path, i);
        const Node& x = n.seq[i];
        if (auto pf = w.typed<m::Prefix>(x, p, parse_prefix, "not a CIDR"))
            if (w.network(x, p, *pf)) out.push_back(*pf);
    }
}

void parse_suffix(Walker& w, const Node& n, const Path& path, Member& mem) {
    std::optional<uint64_t> v;
    if (n.is_scalar() && n.scalar.find(':') != std::string::npos) {
        v = parse_suffix_groups(n.scalar);
        if (!v) {
            w.error(n.loc, path, fmt::format("{} — a suffix is four hex groups like 6987:50a0:9b93:4337, or an integer", quote(n.scalar)));
            return;
        }
    } else {
        v = w.uint(n, path, 0, UINT64_MAX, true);
        if (!v) return;
    }
    if (*v == 0 || *v == 1) {
        w.error(n.loc, path, fmt::format("{} — suffixes 0 and 1 are reserved (subnet and controller addresses)", quote(n.scalar)));
        return;
    }
    mem.suffix = *v;
}

// Keys controllers and peers share.
void member_public_key(Walker& w, const Node& v, const Path& p, Member& mem) {
    mem.public_key = w.typed<m::Key>(v, p, parse_key, "not a WireGuard key");
}
void member_endpoint(Walker& w, const Node& v, const Path& p, Member& mem) {
    mem.endpoint = w.typed<m::Endpoint>(v, p, parse_endpoint, "not an endpoint");
}
void member_routes(Walker& w, const Node& v, const Path& p, Member& mem) { parse_routes(w, v, p, mem.routes); }
void member_ipv4(Walker& w, const Node& v, const Path& p, Member& mem) {
    if (auto a = w.typed<m::IpAddr>(v, p, parse_ip, "not an IPv4 address")) {
        if (a->is_v4()) mem.ipv4 = *a;
        else w.error(v.loc, p, fmt::format("{} — ipv4 must be an IPv4 address", quote(v.scalar)));
    }
}

// exit_node: a controller's name, or `none` (or null) for no exit node.
std::optional<std::string> parse_exit_node(Walker& w, const Node& v, const Path& p) {
    if (v.is_null() || (v.is_scalar() && v.scalar == "none")) return std::string();
    return w.name(v, p, "node");
}

constexpr Field<Member> kController[] = {
    {"public_key", member_public_key},
    {"endpoint", member_endpoint},
    {"routes", member_routes},
    {"id",
     [](Walker& w, const Node& v, const Path& p, Member& mem) {
         if (auto id = w.uint(v, p, 0, 65535, true)) mem.id = static_cast<uint16_t>(*id);
     }},
    {"ipv4", member_ipv4},
};

constexpr Field<Member> kPeer[] = {
    {"public_key", member_public_key},
    {"endpoint", member_endpoint},
    {"controller", [](Walker& w, const Node& v, const Path& p, Member& mem) { mem.controller = w.name(v, p, "node"); }},
    {"routes", member_routes},
    {"suffix", parse_suffix},
    {"ipv4", member_ipv4},
    {"exit_node", [](Walker& w, const Node& v, const Path& p, Member& mem) { mem.exit_node = parse_exit_node(w, v, p); }},
};

// A map of members by node name, each parsed with `table`.
void parse_members(Walker& w, const Node& n, const Path& path, Table<Member> table, std::map<std::string, Member>& out) {
    if (!w.is_map(n, path, true)) return;
    for (const auto& e : n.map) {
        const Path mpath(path, e.key);
        if (!m::valid_node_name(e.key)) {
            w.error(e.key_loc, mpath, Walker::bad_name(e.key, "node"));
            continue;
        }
        if (!w.is_map(e.value, mpath, true)) {
            w.broken().add_node(e.key);
            continue;
        }
        Member mem;
        parse_fields(w, e.value, mpath, table, mem);
        out.emplace(e.key, std::move(mem));
    }
}

// Keys only a subnet-style fleet has, in the order a fleet mixing the styles is reported by.
constexpr std::string_view kSubnetOnly[] = {"ip6", "subnet", "external_ip", "server", "public_key", "headscale"};

std::optional<uint64_t> duration_at_least(Walker& w, const Node& v, const Path& p, uint64_t lo) {
    auto s = w.str(v, p);
    if (!s) return std::nullopt;
    auto d = m::parse_duration(*s);
    if (!d) w.error(v.loc, p, fmt::format("{} — a duration is like 30s, 10m or 1h (units d, h, m, s)", quote(*s)));
    else if (*d < lo) w.error(v.loc, p, fmt::format("{} — must be at least {}", quote(*s), m::format_duration(lo)));
    else return d;
    return std::nullopt;
}

// An http:// or https:// URL with a host; its path, if any, is where the API lives under.
bool valid_http_url(std::string_view s) {
    std::string_view rest;
    if (s.starts_with("http://")) rest = s.substr(7);
    else if (s.starts_with("https://")) rest = s.substr(8);
    else return false;
    if (rest.empty() || rest.front() == '/' || rest.front() == ':') return false;
    return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f || c == '?' || c == '#'; });
}

constexpr Field<m::Headscale> kHeadscale[] = {
    {"url",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto s = w.str(v, p)) {
             if (valid_http_url(*s)) h.url = *s;
             else
                 w.error(v.loc, p,
                         fmt::format("{} — expected an http:// or https:// URL such as https://headscale.example.com", quote(*s)));
         }
     },
     Need::required},
    {"api_key_file",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto s = w.abs_path(v, p)) h.api_key_file = *s;
     },
     Need::required},
    {"poll_interval",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto d = duration_at_least(w, v, p, 1)) h.poll_interval = *d;
     }},
    {"timeout",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto d = duration_at_least(w, v, p, 1)) h.timeout = *d;
     }},
    {"grace",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto d = duration_at_least(w, v, p, 0)) h.grace = *d;
     }},
    {"pool",
     [](Walker& w, const Node& v, const Path& p, m::Headscale& h) {
         if (auto pf = w.typed<m::Prefix>(v, p, parse_prefix, "not a CIDR")) {
             if (!w.network(v, p, *pf)) return;
             if (pf->addr.is_v4() ? pf->len > 30 : pf->len > 126)
                 w.error(v.loc, p,
                         fmt::format("{} — the pool needs room for nodes: /{} or shorter", quote(v.scalar), pf->addr.is_v4() ? 30 : 126));
             else h.pool = *pf;
         }
     }},
};

void parse_headscale(Walker& w, const Node& n, const Path& path, Fleet& f) {
    if (!w.is_map(n, path, false)) return;
    m::Headscale h;
    parse_fields(w, n, path, kHeadscale, h);
    for (const auto& fld : kHeadscale)
        if (fld.need == Need::required && w.missing(n, path, fld.key))
            w.error(n.loc, path, fmt::format("missing required key '{}'", fld.key));
    f.headscale = std::move(h);
}

// The pool must lie inside an address range the fleet's server holds, or its nodes would have
// addresses nothing routes to them; checked once the fleet's own keys are all parsed.
void check_headscale_pool(Walker& w, const Node& fleet_node, const Path& path, const Fleet& f) {
    if (!f.headscale || !f.headscale->pool) return;
    // Judged against the fleet's ranges only when they could be read.
    if (w.broken().hit(Path(path, "subnet").str()) || w.broken().hit(Path(path, "ipv4").str())) return;
    const Node& hs = fleet_node.find("headscale")->value;
    const Entry* pe = hs.find("pool");
    const m::Prefix& pool = *f.headscale->pool;
    auto inside = [&](const std::optional<m::Prefix>& outer) {
        return outer && outer->addr.family == pool.addr.family && outer->len <= pool.len && outer->contains(pool.addr);
    };
    if (inside(f.subnet) || inside(f.ipv4)) return;
    const Path hpath(path, "headscale");
    w.error(
        pe->value.loc, Path(hpath, "pool"),
        fmt::format("{} — the pool must lie inside the fleet's subnet{}{}", quote(pe->value.scalar), f.subnet ? " " + f.subnet->str() : "",
                    f.ipv4 ? " or its ipv4 " + f.ipv4->str() : " (or set the fleet's ipv4: around it)"));
}

constexpr Field<Fleet> kFleet[] = {
    {"interface",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto s = w.str(v, p)) {
             std::string why;
             if (m::valid_ifname(*s, &why)) f.interface = *s;
             else w.error(v.loc, p, fmt::format("{} — {}", quote(*s), why));
         }
     }},
    {"port",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto x = w.uint(v, p, 1, 65535)) f.port = static_cast<uint16_t>(*x);
     }},
    {"topology",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto s = w.str(v, p)) {
             if (*s == "hub") f.topology = m::Topology::hub;
             else if (*s == "mesh") f.topology = m::Topology::mesh;
             else w.error(v.loc, p, fmt::format("{} — topology is hub or mesh", quote(*s)));
         }
     }},
    {"mtu",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto x = w.uint(v, p, 1280, 65535)) f.mtu = static_cast<uint32_t>(*x);
     }},
    {"keepalive",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto x = w.uint(v, p, 0, 65535)) f.keepalive = static_cast<uint16_t>(*x);
     }},
    {"exclusive",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto b = w.boolean(v, p)) f.exclusive = *b;
     }},
    {"key_max_age",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto d = duration_at_least(w, v, p, 1)) f.key_max_age = *d;
     }},
    {"ipv4",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto pf = w.typed<m::Prefix>(v, p, parse_prefix, "not an IPv4 CIDR")) {
             if (!pf->addr.is_v4()) w.error(v.loc, p, fmt::format("{} — ipv4 must be an IPv4 CIDR such as 10.50.0.0/24", quote(v.scalar)));
             else if (w.network(v, p, *pf)) f.ipv4 = *pf;
         }
     }},
    {"peers", [](Walker& w, const Node& v, const Path& p, Fleet& f) { parse_members(w, v, p, kPeer, f.peers); }},
    {"controllers", [](Walker& w, const Node& v, const Path& p, Fleet& f) { parse_members(w, v, p, kController, f.controllers); }},
    {"ip6",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto a = w.typed<m::IpAddr>(v, p, parse_ip, "not an IPv6 address")) {
             if (!a->is_v6()) w.error(v.loc, p, fmt::format("{} — ip6 must be an IPv6 address", quote(v.scalar)));
             else f.ip6 = *a;
         }
     }},
    {"subnet",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto pf = w.typed<m::Prefix>(v, p, parse_prefix, "not a CIDR")) {
             if (!pf->addr.is_v6()) {
                 w.error(v.loc, p, fmt::format("{} — subnet must be an IPv6 CIDR", quote(v.scalar)));
             } else if (w.network(v, p, *pf)) {
                 if (pf->len > 120)
                     w.error(v.loc, p, fmt::format("{} — the subnet needs room for clients: /120 or shorter", quote(v.scalar)));
                 else f.subnet = *pf;
             }
         }
     }},
    {"external_ip",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto s = w.str(v, p)) {
             if (m::IpAddr::parse(*s) || m::valid_dns_name(*s)) f.external_ip = *s;
             else w.error(v.loc, p, fmt::format("{} — external_ip must be an IP address or a DNS name", quote(*s)));
         }
     }},
    {"server",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto s = w.name(v, p, "node")) f.server = *s;
     }},
    {"public_key", [](Walker& w, const Node& v, const Path& p,
                      Fleet& f) { f.server_public_key = w.typed<m::Key>(v, p, parse_key, "not a WireGuard key"); }},
    {"headscale", parse_headscale},
    {"exit_node",
     [](Walker& w, const Node& v, const Path& p, Fleet& f) {
         if (auto e = parse_exit_node(w, v, p); e && !e->empty()) f.exit_node = e;
     }},
};

// The fleet's style decides its defaults and which keys it needs, so it is settled before the
// keys are parsed; a fleet whose style is unclear is not parsed further.
bool parse_fleet(Walker& w, const Entry& fe, const Path& path, Fleet& f) {
    const Node& n = fe.value;
    if (!w.is_map(n, path, false)) return false;
    const bool clan = n.find("controllers") != nullptr;
    auto subnet_key = std::find_if(std::begin(kSubnetOnly), std::end(kSubnetOnly), [&](auto k) { return n.find(k) != nullptr; });
    if (clan && subnet_key != std::end(kSubnetOnly)) {
        check_keys<Fleet>(w, n, path, kFleet);
        const Entry* first = n.find(*subnet_key);
        w.error(first->key_loc, Path(path, first->key),
                "a fleet is either clan-style (controllers:) or subnet-style (ip6:, subnet:), not both");
        return false;
    }
    if (!clan && !n.find("ip6") && !n.find("subnet")) {
        // With a misspelt key the 'did you mean' already says what is wrong.
        if (check_keys<Fleet>(w, n, path, kFleet) == 0)
            w.error(fe.key_loc, path, "a fleet needs controllers: (clan style) or ip6: and subnet: (subnet style)");
        return false;
    }
    f.style = clan ? m::FleetStyle::clan : m::FleetStyle::subnet;
    f.interface = clan ? fe.key : "wg_" + fe.key;
    parse_fields(w, n, path, kFleet, f);
    if (!clan) {
        if (w.missing(n, path, "ip6")) w.error(fe.key_loc, path, "a subnet-style fleet needs ip6: (the server's address)");
        if (w.missing(n, path, "subnet")) w.error(fe.key_loc, path, "a subnet-style fleet needs subnet: (the clients' IPv6 subnet)");
    }
    check_headscale_pool(w, n, path, f);
    if (!n.find("interface")) {
        std::string why;
        if (!m::valid_ifname(f.interface, &why))
            w.error(fe.key_loc, path,
                    fmt::format("the default interface name {} is not valid ({}); set interface:", quote(f.interface), why));
    }
    return true;
}

// A fleet left out of the configuration: references to its nodes are not "unknown".
void leave_out(Walker& w, const Node& fleet, const Path& path) {
    w.broken().add(path.str());
    if (!fleet.is_map()) return;
    for (const char* group : {"controllers", "peers"})
        if (const Entry* g = fleet.find(group); g && g->value.is_map())
            for (const auto& e : g->value.map) w.broken().add_node(e.key);
    if (const Entry* s = fleet.find("server"); s && s->value.is_scalar()) w.broken().add_node(s->value.scalar);
}

void parse_fleets(Walker& w, const Node& n, const Path& path, std::map<std::string, Fleet>& out) {
    if (!w.is_map(n, path, true)) return;
    for (const auto& e : n.map) {
        const Path fpath(path, e.key);
        if (!m::valid_node_name(e.key)) {
            w.error(e.key_loc, fpath, Walker::bad_name(e.key, "fleet"));
            leave_out(w, e.value, fpath);
            continue;
        }
        Fleet f;
        if (parse_fleet(w, e, fpath, f)) out.emplace(e.key, std::move(f));
        else leave_out(w, e.value, fpath);
    }
}

std::optional<m::Proto> parse_proto(Walker& w, const Node& n, const Path& path) {
    auto s = w.str(n, path);
    if (!s) return std::nullopt;
    if (*s == "tcp") return m::Proto::tcp;
    if (*s == "udp") return m::Proto::udp;
    w.error(n.loc, path, fmt::format("{} — proto is tcp or udp", quote(*s)));
    return std::nullopt;
}

bool valid_item_name(std::string_view s) {
    if (s.empty() || s.size() > 63 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; });
}

// Keys forwards[] and http_routes[] share.
template <class T>
void item_name(Walker& w, const Node& v, const Path& p, T& t) {
    if (auto s = w.str(v, p)) {
        if (valid_item_name(*s)) t.name = *s;
        else w.error(v.loc, p, fmt::format("{} — names use letters, digits, '-', '_' and '.', at most 63 characters", quote(*s)));
    }
}
template <class T>
void item_node(Walker& w, const Node& v, const Path& p, T& t) {
    if (auto s = w.name(v, p, "node")) t.node = *s;
}

// A member's node name, or an IP address: one address, so a CIDR gets a message of its own.
void forward_to(Walker& w, const Node& v, const Path& p, m::Forward& f) {
    const std::string* s = w.str(v, p);
    if (!s) return;
    if (auto a = m::IpAddr::parse(*s)) {
        f.to = *s;
        f.to_addr = *a;
    } else if (m::valid_node_name(*s)) {
        f.to = *s;
    } else if (s->find('/') != std::string::npos && m::Prefix::parse(*s)) {
        w.error(v.loc, p, fmt::format("{} — a forward goes to one address, not a prefix", quote(*s)));
    } else {
        w.error(v.loc, p, fmt::format("{} — not a node name nor an IP address", quote(*s)));
    }
}

constexpr Field<m::Forward> kForward[] = {
    {"name", item_name<m::Forward>, Need::required},
    {"node", item_node<m::Forward>, Need::required},
    {"proto",
     [](Walker& w, const Node& v, const Path& p, m::Forward& f) {
         if (auto pr = parse_proto(w, v, p)) f.proto = *pr;
     }},
    {"port",
     [](Walker& w, const Node& v, const Path& p, m::Forward& f) {
         if (auto x = w.uint(v, p, 1, 65535)) f.port = static_cast<uint16_t>(*x);
     },
     Need::required},
    {"to", forward_to, Need::required},
    {"to_port",
     [](Walker& w, const Node& v, const Path& p, m::Forward& f) {
         if (auto x = w.uint(v, p, 1, 65535)) f.to_port = static_cast<uint16_t>(*x);
     }},
    {"fleet", [](Walker& w, const Node& v, const Path& p, m::Forward& f) { f.fleet = w.name(v, p, "fleet"); }},
};

constexpr Field<m::HttpRoute> kHttpRoute[] = {
    {"name", item_name<m::HttpRoute>, Need::required},
    {"node", item_node<m::HttpRoute>, Need::required},
    {"host",
     [](Walker& w, const Node& v, const Path& p, m::HttpRoute& r) {
         if (auto s = w.str(v, p)) {
             if (m::valid_dns_name(*s)) r.host = *s;
             else w.error(v.loc, p, fmt::format("{} — not a DNS host name", quote(*s)));
         }
     },
     Need::required},
    {"to",
     [](Walker& w, const Node& v, const Path& p, m::HttpRoute& r) {
         if (auto s = w.str(v, p)) r.to = *s;
     },
     Need::required},
    {"entrypoint",
     [](Walker& w, const Node& v, const Path& p, m::HttpRoute& r) {
         if (auto s = w.str(v, p)) r.entrypoint = *s;
     }},
    {"certresolver",
     [](Walker& w, const Node& v, const Path& p, m::HttpRoute& r) {
         if (auto s = w.str(v, p)) r.certresolver = *s;
         else r.certresolver.reset();
     }},
};

// A list of maps, each parsed with `table` into one T.
template <class T>
void parse_list(Walker& w, const Node& n, const Path& path, std::type_identity_t<Table<T>> table, std::vector<T>& out) {
    if (n.is_null()) return;
    if (!n.is_seq()) {
        w.error(n.loc, path, fmt::format("expected a list, got {}", kind_name(n)));
        return;
    }
    for (size_t i = 0; i < n.seq.size(); ++i) {
        const Node& item = n.seq[i];
        const Path ipath(path, i);
        // An item that is not a map stays as an empty one, so that the items after it keep the
        // indexes their YAML paths name.
        if (!w.is_map(item, ipath, false)) {
            out.emplace_back();
            continue;
        }
        T t;
        parse_fields(w, item, ipath, table, t);
        for (const auto& f : table)
            if (f.need == Need::required && w.missing(item, ipath, f.key))
                w.error(item.loc, ipath, fmt::format("missing required key '{}'", f.key));
        out.push_back(std::move(t));
    }
}

constexpr Field<m::FirewallSettings> kFirewall[] = {
    {"foreign_accept",
     [](Walker& w, const Node& v, const Path& p, m::FirewallSettings& f) {
         if (auto b = w.boolean(v, p)) f.foreign_accept = *b;
     }},
};

constexpr Field<m::Serve> kServe[] = {
    {"listen",
     [](Walker& w, const Node& n, const Path& path, m::Serve& s) {
         if (!n.is_seq()) {
             w.error(n.loc, path, fmt::format("expected a list of ADDRESS:PORT, got {}", kind_name(n)));
             return;
         }
         for (size_t i = 0; i < n.seq.size(); ++i) {
             const Path p(path, i);
             const Node& x = n.seq[i];
             auto e = w.typed<m::Endpoint>(x, p, parse_endpoint, "not ADDRESS:PORT");
             if (!e) continue;
             std::string host = e->host.size() >= 2 && e->host.front() == '[' ? e->host.substr(1, e->host.size() - 2) : e->host;
             if (!m::IpAddr::parse(host) || !e->port)
                 w.error(x.loc, p,
                         fmt::format("{} — a listener is an IP address and a port, like 127.0.0.1:8000 or [::1]:8000", quote(x.scalar)));
             else s.listen.push_back(*e);
         }
     }},
    {"token_file", [](Walker& w, const Node& v, const Path& p, m::Serve& s) { s.token_file = w.abs_path(v, p); }},
    {"agent_token_file", [](Walker& w, const Node& v, const Path& p, m::Serve& s) { s.agent_token_file = w.abs_path(v, p); }},
    {"trusted_proxies", [](Walker& w, const Node& v, const Path& p, m::Serve& s) { parse_routes(w, v, p, s.trusted_proxies); }},
};

constexpr Field<Config> kTop[] = {
    {"domain",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.str(v, p)) {
             if (m::valid_dns_name(*s)) cfg.domain = *s;
             else w.error(v.loc, p, fmt::format("{} — not a DNS domain name", quote(*s)));
         }
     }},
    {"prune_timeout",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.str(v, p)) {
             if (auto d = m::parse_duration(*s)) cfg.prune_timeout = *d;
             else w.error(v.loc, p, fmt::format("{} — a duration is like 30m, 1h or 2h30m (units d, h, m, s)", quote(*s)));
         }
     }},
    {"state_dir",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.abs_path(v, p)) cfg.state_dir = *s;
     }},
    {"keys_dir", [](Walker& w, const Node& v, const Path& p, Config& cfg) { cfg.keys_dir = w.abs_path(v, p); }},
    {"key_max_age",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto d = duration_at_least(w, v, p, 1)) cfg.key_max_age = *d;
     }},
    {"userspace",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.str(v, p)) {
             if (s->empty()) w.error(v.loc, p, "userspace must name a command");
             else cfg.userspace = *s;
         }
     }},
    {"hosts_file",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.abs_path(v, p)) cfg.hosts_file = *s;
     }},
    {"http_routes_dir",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.abs_path(v, p)) cfg.http_routes_dir = *s;
     }},
    {"http_server",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.str(v, p)) {
             if (*s == "traefik") cfg.http_server = m::HttpServer::traefik;
             else if (*s == "caddy") cfg.http_server = m::HttpServer::caddy;
             else w.error(v.loc, p, fmt::format("{} — expected traefik or caddy", quote(*s)));
         }
     }},
    {"caddy_reload",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (auto s = w.str(v, p)) {
             if (s->find_first_not_of(" \t") == std::string::npos) w.error(v.loc, p, "caddy_reload must name a command");
             else cfg.caddy_reload = *s;
         }
     }},
    {"fleets", [](Walker& w, const Node& v, const Path& p, Config& cfg) { parse_fleets(w, v, p, cfg.fleets); }},
    {"forwards",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         parse_list(w, v, p, kForward, cfg.forwards);
         for (auto& f : cfg.forwards)
             if (!f.to_port) f.to_port = f.port;
     }},
    {"http_routes", [](Walker& w, const Node& v, const Path& p, Config& cfg) { parse_list(w, v, p, kHttpRoute, cfg.http_routes); }},
    {"serve",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (w.is_map(v, p, true) && v.is_map()) parse_fields(w, v, p, kServe, cfg.serve);
     }},
    {"firewall",
     [](Walker& w, const Node& v, const Path& p, Config& cfg) {
         if (w.is_map(v, p, true) && v.is_map()) parse_fields(w, v, p, kFirewall, cfg.firewall);
     }},
};

void parse_top(Walker& w, const Node& root, Config& cfg) {
    if (root.is_null()) return;  // an empty file: no fleets
    const Path root_path;
    if (!w.is_map(root, root_path, false)) return;
    parse_fields(w, root, root_path, kTop, cfg);
}

template <class T>
void list_keys(std::string_view prefix, Table<T> table, std::vector<std::string>& out) {
    for (const auto& f : table) out.push_back(std::string(prefix) + std::string(f.key));
}

}  // namespace

// Each table under the path its mappings sit at; a new table needs its line here (the man page
// test also checks the reverse: no key the schema names is missing from this list).
std::vector<std::string> accepted_keys() {
    std::vector<std::string> out;
    list_keys<Config>("", kTop, out);
    list_keys<Fleet>("fleets.*.", kFleet, out);
    list_keys<Member>("fleets.*.controllers.*.", kController, out);
    list_keys<Member>("fleets.*.peers.*.", kPeer, out);
    list_keys<m::Forward>("forwards[].", kForward, out);
    list_keys<m::HttpRoute>("http_routes[].", kHttpRoute, out);
    list_keys<m::Serve>("serve.", kServe, out);
    list_keys<m::FirewallSettings>("firewall.", kFirewall, out);
    list_keys<m::Headscale>("fleets.*.headscale.", kHeadscale, out);
    return out;
}

Parsed parse(const std::vector<SourceFile>& files, Sources& sources, Diagnostics& diags) {
    Parsed out;
    bool first = true;
    for (const auto& f : files) {
        uint32_t id = sources.add(f.name, f.text);
        Node doc = parse_yaml(sources.text(id), id, diags);
        if (!doc.is_null() && !doc.is_map()) {
            diags.error(doc.loc, "", fmt::format("the file must be a map of settings, got {}", kind_name(doc)));
            continue;
        }
        if (first) out.tree = std::move(doc);
        else merge_into(out.tree, std::move(doc), sources, diags);
        first = false;
    }
    return parse_tree(std::move(out.tree), diags);
}

Parsed parse_tree(Node tree, Diagnostics& diags) {
    Parsed out{.config = {}, .tree = std::move(tree), .broken = {}};
    Walker w(diags, out.broken);
    parse_top(w, out.tree, out.config);
    // Caddy's routes default to a directory of their own: Traefik's would mix the two formats.
    if (out.config.http_server == m::HttpServer::caddy && out.tree.is_map() && !out.tree.find("http_routes_dir"))
        out.config.http_routes_dir = "/etc/caddy/wg-fleet";
    // Every error so far (of the YAML, a merge of drop-ins, this walk) marks its path; should
    // some not have been kept, nothing is known to be sound.
    size_t kept = 0;
    for (const auto& d : diags.all())
        if (d.severity == Severity::error) {
            out.broken.add(d.path);
            ++kept;
        }
    if (kept < diags.errors()) out.broken.add("");
    return out;
}

bool Broken::hit(std::string_view path) const {
    if (paths_.empty()) return false;
    if (paths_.count(path) || paths_.count(std::string_view())) return true;
    for (size_t i = 0; i < path.size(); ++i)
        if ((path[i] == '.' || path[i] == '[') && paths_.count(path.substr(0, i))) return true;
    return false;
}

bool Broken::touches(std::string_view path) const {
    if (hit(path)) return true;
    auto it = paths_.lower_bound(path);
    while (it != paths_.end() && std::string_view(*it).starts_with(path)) {
        if (it->size() > path.size() && ((*it)[path.size()] == '.' || (*it)[path.size()] == '[')) return true;
        ++it;
    }
    return false;
}

Parsed parse_text(std::string_view text, std::string_view file_name, Sources& sources, Diagnostics& diags) {
    return parse({SourceFile{.name = std::string(file_name), .text = std::string(text)}}, sources, diags);
}

}  // namespace wgf::config
