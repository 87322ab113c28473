#include "config/parse.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>

#include <fmt/format.h>

namespace wgf::config {
namespace {

using model::Config;
using model::Fleet;
using model::Member;
namespace m = wgf::model;

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
    explicit Walker(Diagnostics& d) : d_(d) {}

    void error(const Loc& loc, const Path& path, std::string msg) { d_.error(loc, path.str(), std::move(msg)); }

    bool is_map(const Node& n, const Path& path, bool null_ok) {
        if (n.is_map() || (null_ok && n.is_null())) return true;
        error(n.loc, path, fmt::format("expected a map, got {}{}", kind_name(n), scalar_suffix(n)));
        return false;
    }

    // Reports unknown keys; returns how many there were.
    size_t check_keys(const Node& n, const Path& path, std::span<const std::string_view> allowed) {
        size_t unknown = 0;
        for (const auto& e : n.map) {
            if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
            std::string_view best;
            size_t best_d = 3;
            for (auto a : allowed) {
                size_t dist = edit_distance(e.key, a);
                if (dist < best_d) best_d = dist, best = a;
            }
            std::string hint = best.empty() ? fmt::format("allowed keys here: {}", join(allowed))
                                            : fmt::format("did you mean '{}'?", best);
            error(e.key_loc, Path(path, e.key), fmt::format("unknown key {} — {}", quote(e.key), hint));
            ++unknown;
        }
        return unknown;
    }

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
            error(n.loc, path, fmt::format("{} — {} names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters", quote(*s), what));
            return std::nullopt;
        }
        return *s;
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

class FleetParser {
public:
    FleetParser(Walker& w, Config& cfg) : w_(w), cfg_(cfg) {}

    void parse_fleets(const Node& n, const Path& path) {
        if (!w_.is_map(n, path, true)) return;
        for (const auto& e : n.map) {
            const Path fpath(path, e.key);
            if (!m::valid_node_name(e.key)) {
                w_.error(e.key_loc, fpath, fmt::format("{} — fleet names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters", quote(e.key)));
                continue;
            }
            Fleet f;
            if (parse_fleet(e, fpath, f)) cfg_.fleets.emplace(e.key, std::move(f));
        }
    }

private:
    bool parse_fleet(const Entry& fe, const Path& path, Fleet& f) {
        const Node& n = fe.value;
        if (!w_.is_map(n, path, false)) return false;
        static constexpr std::string_view kCommon[] = {"interface", "port", "topology", "mtu", "keepalive",
                                                        "exclusive", "ipv4", "peers", "controllers", "ip6",
                                                        "subnet", "external_ip", "server", "public_key"};
        size_t unknown = w_.check_keys(n, path, kCommon);

        bool clan = n.find("controllers") != nullptr;
        std::vector<std::string_view> subnet_keys;
        for (auto k : {"ip6", "subnet", "external_ip", "server", "public_key"})
            if (n.find(k)) subnet_keys.push_back(k);
        if (clan && !subnet_keys.empty()) {
            const Entry* first = n.find(subnet_keys.front());
            w_.error(first->key_loc, Path(path, first->key),
                     "a fleet is either clan-style (controllers:) or subnet-style (ip6:, subnet:), not both");
            return false;
        }
        if (!clan && !n.find("ip6") && !n.find("subnet")) {
            // With a misspelt key the 'did you mean' above already says what is wrong.
            if (unknown == 0)
                w_.error(fe.key_loc, path, "a fleet needs controllers: (clan style) or ip6: and subnet: (subnet style)");
            return false;
        }
        f.style = clan ? m::FleetStyle::clan : m::FleetStyle::subnet;
        f.interface = clan ? fe.key : "wg_" + fe.key;
        bool interface_given = false;

        for (const auto& e : n.map) {
            const Path p(path, e.key);
            const Node& v = e.value;
            if (e.key == "interface") {
                interface_given = true;
                if (auto s = w_.str(v, p)) {
                    std::string why;
                    if (m::valid_ifname(*s, &why)) f.interface = *s;
                    else w_.error(v.loc, p, fmt::format("{} — {}", quote(*s), why));
                }
            } else if (e.key == "port") {
                if (auto x = w_.uint(v, p, 1, 65535)) f.port = static_cast<uint16_t>(*x);
            } else if (e.key == "topology") {
                if (auto s = w_.str(v, p)) {
                    if (*s == "hub") f.topology = m::Topology::hub;
                    else if (*s == "mesh") f.topology = m::Topology::mesh;
                    else w_.error(v.loc, p, fmt::format("{} — topology is hub or mesh", quote(*s)));
                }
            } else if (e.key == "mtu") {
                if (auto x = w_.uint(v, p, 1280, 65535)) f.mtu = static_cast<uint32_t>(*x);
            } else if (e.key == "keepalive") {
                if (auto x = w_.uint(v, p, 0, 65535)) f.keepalive = static_cast<uint16_t>(*x);
            } else if (e.key == "exclusive") {
                if (auto b = w_.boolean(v, p)) f.exclusive = *b;
            } else if (e.key == "ipv4") {
                if (auto pf = w_.typed<m::Prefix>(v, p, parse_prefix, "not an IPv4 CIDR")) {
                    if (!pf->addr.is_v4()) w_.error(v.loc, p, fmt::format("{} — ipv4 must be an IPv4 CIDR such as 10.50.0.0/24", quote(v.scalar)));
                    else if (!pf->is_network()) w_.error(v.loc, p, fmt::format("{} — host bits are set; did you mean {}?", quote(v.scalar), pf->masked().str()));
                    else f.ipv4 = *pf;
                }
            } else if (e.key == "controllers") {
                parse_members(v, p, f.controllers, true);
            } else if (e.key == "peers") {
                parse_members(v, p, f.peers, false);
            } else if (e.key == "ip6") {
                if (auto a = w_.typed<m::IpAddr>(v, p, parse_ip, "not an IPv6 address")) {
                    if (!a->is_v6()) w_.error(v.loc, p, fmt::format("{} — ip6 must be an IPv6 address", quote(v.scalar)));
                    else f.ip6 = *a;
                }
            } else if (e.key == "subnet") {
                if (auto pf = w_.typed<m::Prefix>(v, p, parse_prefix, "not a CIDR")) {
                    if (!pf->addr.is_v6()) w_.error(v.loc, p, fmt::format("{} — subnet must be an IPv6 CIDR", quote(v.scalar)));
                    else if (!pf->is_network()) w_.error(v.loc, p, fmt::format("{} — host bits are set; did you mean {}?", quote(v.scalar), pf->masked().str()));
                    else if (pf->len > 120) w_.error(v.loc, p, fmt::format("{} — the subnet needs room for clients: /120 or shorter", quote(v.scalar)));
                    else f.subnet = *pf;
                }
            } else if (e.key == "external_ip") {
                if (auto s = w_.str(v, p)) {
                    if (m::IpAddr::parse(*s) || m::valid_dns_name(*s)) f.external_ip = *s;
                    else w_.error(v.loc, p, fmt::format("{} — external_ip must be an IP address or a DNS name", quote(*s)));
                }
            } else if (e.key == "server") {
                if (auto s = w_.name(v, p, "node")) f.server = *s;
            } else if (e.key == "public_key") {
                f.server_public_key = w_.typed<m::Key>(v, p, parse_key, "not a WireGuard key");
            }
        }
        if (!clan) {
            if (!n.find("ip6")) w_.error(fe.key_loc, path, "a subnet-style fleet needs ip6: (the server's address)");
            if (!n.find("subnet")) w_.error(fe.key_loc, path, "a subnet-style fleet needs subnet: (the clients' IPv6 subnet)");
        }
        if (!interface_given) {
            std::string why;
            if (!m::valid_ifname(f.interface, &why))
                w_.error(fe.key_loc, path, fmt::format("the default interface name {} is not valid ({}); set interface:", quote(f.interface), why));
        }
        return true;
    }

    void parse_members(const Node& n, const Path& path, std::map<std::string, Member>& out, bool controllers) {
        if (!w_.is_map(n, path, true)) return;
        static constexpr std::string_view kController[] = {"public_key", "endpoint", "routes", "id", "ipv4"};
        static constexpr std::string_view kPeer[] = {"public_key", "endpoint", "controller", "routes", "suffix", "ipv4"};
        for (const auto& e : n.map) {
            const Path mpath(path, e.key);
            if (!m::valid_node_name(e.key)) {
                w_.error(e.key_loc, mpath, fmt::format("{} — node names use letters, digits, '-' and '_', start with a letter or digit, at most 63 characters", quote(e.key)));
                continue;
            }
            Member mem;
            const Node& v = e.value;
            if (!w_.is_map(v, mpath, true)) continue;
            if (controllers) w_.check_keys(v, mpath, kController);
            else w_.check_keys(v, mpath, kPeer);
            for (const auto& f : v.map) {
                const Path p(mpath, f.key);
                const Node& x = f.value;
                if (f.key == "public_key") {
                    mem.public_key = w_.typed<m::Key>(x, p, parse_key, "not a WireGuard key");
                } else if (f.key == "endpoint") {
                    mem.endpoint = w_.typed<m::Endpoint>(x, p, parse_endpoint, "not an endpoint");
                } else if (f.key == "controller" && !controllers) {
                    mem.controller = w_.name(x, p, "node");
                } else if (f.key == "routes") {
                    parse_routes(x, p, mem.routes);
                } else if (f.key == "id" && controllers) {
                    if (auto id = w_.uint(x, p, 0, 65535, true)) mem.id = static_cast<uint16_t>(*id);
                } else if (f.key == "suffix" && !controllers) {
                    parse_suffix(x, p, mem);
                } else if (f.key == "ipv4") {
                    if (auto a = w_.typed<m::IpAddr>(x, p, parse_ip, "not an IPv4 address")) {
                        if (a->is_v4()) mem.ipv4 = *a;
                        else w_.error(x.loc, p, fmt::format("{} — ipv4 must be an IPv4 address", quote(x.scalar)));
                    }
                }
            }
            out.emplace(e.key, std::move(mem));
        }
    }

    void parse_routes(const Node& n, const Path& path, std::vector<m::Prefix>& out) {
        if (!n.is_seq()) {
            w_.error(n.loc, path, fmt::format("expected a list of CIDRs, got {}", kind_name(n)));
            return;
        }
        for (size_t i = 0; i < n.seq.size(); ++i) {
            const Path p(path, i);
            const Node& x = n.seq[i];
            if (auto pf = w_.typed<m::Prefix>(x, p, parse_prefix, "not a CIDR")) {
                if (!pf->is_network())
                    w_.error(x.loc, p, fmt::format("{} — host bits are set; did you mean {}?", quote(x.scalar), pf->masked().str()));
                else out.push_back(*pf);
            }
        }
    }

    void parse_suffix(const Node& n, const Path& path, Member& mem) {
        std::optional<uint64_t> v;
        if (n.is_scalar() && n.scalar.find(':') != std::string::npos) {
            v = parse_suffix_groups(n.scalar);
            if (!v) {
                w_.error(n.loc, path, fmt::format("{} — a suffix is four hex groups like 6987:50a0:9b93:4337, or an integer", quote(n.scalar)));
                return;
            }
        } else {
            v = w_.uint(n, path, 0, UINT64_MAX, true);
            if (!v) return;
        }
        if (*v == 0 || *v == 1) {
            w_.error(n.loc, path, fmt::format("{} — suffixes 0 and 1 are reserved (subnet and controller addresses)", quote(n.scalar)));
            return;
        }
        mem.suffix = *v;
    }

    Walker& w_;
    Config& cfg_;
};

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

// Shared shape of forwards[] and http_routes[]: a list of maps with a required name and node.
template <class T, class F>
void parse_list(Walker& w, const Node& n, const Path& path, std::span<const std::string_view> allowed,
                std::span<const std::string_view> required, std::vector<T>& out, F&& field) {
    if (n.is_null()) return;
    if (!n.is_seq()) {
        w.error(n.loc, path, fmt::format("expected a list, got {}", kind_name(n)));
        return;
    }
    for (size_t i = 0; i < n.seq.size(); ++i) {
        const Node& item = n.seq[i];
        const Path ipath(path, i);
        if (!w.is_map(item, ipath, false)) continue;
        w.check_keys(item, ipath, allowed);
        for (auto r : required)
            if (!item.find(r)) w.error(item.loc, ipath, fmt::format("missing required key '{}'", r));
        T t;
        for (const auto& e : item.map) {
            const Path p(ipath, e.key);
            if (e.key == "name") {
                if (auto s = w.str(e.value, p)) {
                    if (valid_item_name(*s)) t.name = *s;
                    else w.error(e.value.loc, p, fmt::format("{} — names use letters, digits, '-', '_' and '.', at most 63 characters", quote(*s)));
                }
            } else if (e.key == "node") {
                if (auto s = w.name(e.value, p, "node")) t.node = *s;
            } else {
                field(t, e, p);
            }
        }
        out.push_back(std::move(t));
    }
}

void parse_top(Walker& w, const Node& root, Config& cfg) {
    if (root.is_null()) return;  // an empty file: no fleets
    const Path root_path;
    if (!w.is_map(root, root_path, false)) return;
    static constexpr std::string_view kTop[] = {"domain", "prune_timeout", "state_dir", "keys_dir", "userspace",
                                                "hosts_file", "http_routes_dir", "fleets", "forwards", "http_routes"};
    w.check_keys(root, root_path, kTop);
    for (const auto& e : root.map) {
        const Path p(root_path, e.key);
        const Node& v = e.value;
        if (e.key == "domain") {
            if (auto s = w.str(v, p)) {
                if (m::valid_dns_name(*s)) cfg.domain = *s;
                else w.error(v.loc, p, fmt::format("{} — not a DNS domain name", quote(*s)));
            }
        } else if (e.key == "prune_timeout") {
            if (auto s = w.str(v, p)) {
                if (auto d = m::parse_duration(*s)) cfg.prune_timeout = *d;
                else w.error(v.loc, p, fmt::format("{} — a duration is like 30m, 1h or 2h30m (units d, h, m, s)", quote(*s)));
            }
        } else if (e.key == "state_dir") {
            if (auto s = w.abs_path(v, p)) cfg.state_dir = *s;
        } else if (e.key == "keys_dir") {
            cfg.keys_dir = w.abs_path(v, p);
        } else if (e.key == "hosts_file") {
            if (auto s = w.abs_path(v, p)) cfg.hosts_file = *s;
        } else if (e.key == "http_routes_dir") {
            if (auto s = w.abs_path(v, p)) cfg.http_routes_dir = *s;
        } else if (e.key == "userspace") {
            if (auto s = w.str(v, p)) {
                if (s->empty()) w.error(v.loc, p, "userspace must name a command");
                else cfg.userspace = *s;
            }
        } else if (e.key == "fleets") {
            FleetParser(w, cfg).parse_fleets(v, p);
        } else if (e.key == "forwards") {
            static constexpr std::string_view kAllowed[] = {"name", "node", "proto", "port", "to", "to_port", "fleet"};
            static constexpr std::string_view kRequired[] = {"name", "node", "port", "to"};
            parse_list(w, v, p, kAllowed, kRequired, cfg.forwards, [&](m::Forward& f, const Entry& e2, const Path& p2) {
                if (e2.key == "proto") {
                    if (auto pr = parse_proto(w, e2.value, p2)) f.proto = *pr;
                } else if (e2.key == "port") {
                    if (auto x = w.uint(e2.value, p2, 1, 65535)) f.port = static_cast<uint16_t>(*x);
                } else if (e2.key == "to") {
                    if (auto s = w.name(e2.value, p2, "node")) f.to = *s;
                } else if (e2.key == "to_port") {
                    if (auto x = w.uint(e2.value, p2, 1, 65535)) f.to_port = static_cast<uint16_t>(*x);
                } else if (e2.key == "fleet") {
                    f.fleet = w.name(e2.value, p2, "fleet");
                }
            });
            for (auto& f : cfg.forwards)
                if (!f.to_port) f.to_port = f.port;
        } else if (e.key == "http_routes") {
            static constexpr std::string_view kAllowed[] = {"name", "node", "host", "to", "entrypoint", "certresolver"};
            static constexpr std::string_view kRequired[] = {"name", "node", "host", "to"};
            parse_list(w, v, p, kAllowed, kRequired, cfg.http_routes, [&](m::HttpRoute& r, const Entry& e2, const Path& p2) {
                if (e2.key == "host") {
                    if (auto s = w.str(e2.value, p2)) {
                        if (m::valid_dns_name(*s)) r.host = *s;
                        else w.error(e2.value.loc, p2, fmt::format("{} — not a DNS host name", quote(*s)));
                    }
                } else if (e2.key == "to") {
                    if (auto s = w.str(e2.value, p2)) r.to = *s;
                } else if (e2.key == "entrypoint") {
                    if (auto s = w.str(e2.value, p2)) r.entrypoint = *s;
                } else if (e2.key == "certresolver") {
                    if (auto s = w.str(e2.value, p2)) r.certresolver = *s;
                    else r.certresolver.reset();
                }
            });
        }
    }
}

}  // namespace

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
    Walker w(diags);
    parse_top(w, out.tree, out.config);
    return out;
}

Parsed parse_text(std::string_view text, std::string_view file_name, Sources& sources, Diagnostics& diags) {
    return parse({SourceFile{std::string(file_name), std::string(text)}}, sources, diags);
}

}  // namespace wgf::config
