#include "serve/import_python.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "plan/address_plan.hpp"

namespace wgf::serve {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::vector<std::string_view> split_list(std::string_view v) {
    std::vector<std::string_view> out;
    while (!v.empty()) {
        size_t c = v.find(',');
        auto item = trim(v.substr(0, c));
        if (!item.empty()) out.push_back(item);
        if (c == std::string_view::npos) break;
        v.remove_prefix(c + 1);
    }
    return out;
}

// An address as wg-quick's Address= and AllowedIPs= take it: with a prefix length, or bare (a host).
std::optional<model::Prefix> parse_cidr(std::string_view text) {
    if (text.find('/') != std::string_view::npos) return model::Prefix::parse(text);
    if (auto a = model::IpAddr::parse(text)) return model::Prefix::host(*a);
    return std::nullopt;
}

// A client's address as the Python manager stored it: bare, or as a host prefix.
std::optional<model::IpAddr> parse_client_address(std::string_view text) {
    auto p = parse_cidr(trim(text));
    if (!p || p->len != p->addr.bits()) return std::nullopt;
    return p->addr;
}

std::string shown(std::string_view value) {
    constexpr size_t kMax = 80;
    std::string s(value.substr(0, kMax));
    for (char& c : s)
        if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
    return value.size() > kMax ? s + "…" : s;
}

}  // namespace

WgQuickConf parse_wg_quick(std::string_view text, const std::string& file, std::vector<std::string>& errors) {
    WgQuickConf conf;
    enum class Section { none, interface, peer, other } section = Section::none;
    std::optional<WgQuickPeer> peer;
    auto end_peer = [&] {
        if (peer) conf.peers.push_back(std::move(*peer));
        peer.reset();
    };
    int line_no = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        auto err = [&](const std::string& what) { errors.push_back(fmt::format("{}:{}: {}", file, line_no, what)); };
        if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        line = trim(line);
        if (line.empty()) continue;
        if (line.front() == '[') {
            end_peer();
            if (iequal(line, "[Interface]")) section = Section::interface;
            else if (iequal(line, "[Peer]")) {
                section = Section::peer;
                peer = WgQuickPeer{.public_key = {}, .allowed_ips = {}, .line = line_no};
            } else section = Section::other;
            continue;
        }
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) {
            err(fmt::format("'{}' is not KEY = VALUE", shown(line)));
            continue;
        }
        auto key = trim(line.substr(0, eq));
        auto value = trim(line.substr(eq + 1));
        if (section == Section::interface) {
            if (iequal(key, "PrivateKey")) {
                // Never quoted: the value is the secret.
                if (auto k = model::SecretKey::from_base64(value)) conf.private_key = *k;
                else err("PrivateKey is not a base64 WireGuard key");
            } else if (iequal(key, "ListenPort")) {
                unsigned port = 0;
                bool digits = !value.empty() && value.size() <= 5 &&
                              std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
                if (digits) port = static_cast<unsigned>(std::stoul(std::string(value)));
                if (!digits || port < 1 || port > 65535) err(fmt::format("ListenPort '{}' is not a port (1..65535)", shown(value)));
                else conf.listen_port = static_cast<uint16_t>(port);
            } else if (iequal(key, "Address")) {
                for (auto item : split_list(value)) {
                    if (auto p = parse_cidr(item)) conf.addresses.push_back(*p);
                    else err(fmt::format("Address '{}' is not an address", shown(item)));
                }
            }
        } else if (section == Section::peer) {
            if (iequal(key, "PublicKey")) {
                std::string why;
                if (auto k = model::Key::from_base64(value, &why)) peer->public_key = *k;
                else err(fmt::format("PublicKey '{}' is not a WireGuard key", shown(value)));
            } else if (iequal(key, "AllowedIPs")) {
                for (auto item : split_list(value)) {
                    if (auto p = parse_cidr(item)) peer->allowed_ips.push_back(*p);
                    else err(fmt::format("AllowedIPs '{}' is not an address or prefix", shown(item)));
                }
            }
        } else if (section == Section::none) {
            err("a setting before any [Interface] or [Peer] section");
        }
    }
    end_peer();
    return conf;
}

std::optional<int64_t> parse_python_time(std::string_view text, bool is_number) {
    text = trim(text);
    if (text.empty()) return std::nullopt;
    if (is_number) {
        try {
            size_t used = 0;
            double v = std::stod(std::string(text), &used);
            if (used != text.size() || v < 0 || v > 1e13) return std::nullopt;
            return static_cast<int64_t>(v);
        } catch (...) {
            return std::nullopt;
        }
    }
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
    std::string buf(text);
    if (std::sscanf(buf.c_str(), "%4d-%2d-%2d%*1[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6) return std::nullopt;
    std::string_view rest = text.substr(static_cast<size_t>(n));
    if (!rest.empty() && rest.front() == '.') {
        rest.remove_prefix(1);
        size_t digits = 0;
        while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
        if (digits == 0) return std::nullopt;
        rest.remove_prefix(digits);
    }
    int64_t offset = 0;
    if (rest == "Z" || rest == "z") rest = {};
    else if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
        int oh = 0, om = 0;
        std::string tz(rest.substr(1));
        if (std::sscanf(tz.c_str(), "%2d:%2d", &oh, &om) != 2 || tz.size() != 5) return std::nullopt;
        offset = (rest.front() == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        rest = {};
    }
    if (!rest.empty() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<int64_t>(timegm(&tm)) - offset;
}

std::vector<std::string> fleets_to_import(const model::Config& cfg, const std::string& node, const PythonTable& table) {
    std::set<std::string> out;
    for (const auto& [name, f] : cfg.fleets)
        if (f.style == model::FleetStyle::subnet && f.subnet && f.server == node) out.insert(name);
    // Only names the file has: a fleet name becomes part of a path (wg_<fleet>.conf).
    for (const auto& r : table.rows)
        if (cfg.fleets.count(r.fleet)) out.insert(r.fleet);
    return {out.begin(), out.end()};
}

namespace {

class Importer {
public:
    explicit Importer(const PythonImportInput& in) : in_(in) {}

    PythonImport run() {
        for (const auto& r : in_.table.rows) rows_[r.fleet].push_back(&r);
        for (const auto& name : fleets_to_import(in_.cfg, in_.node, in_.table)) fleet(name);
        for (const auto& [name, rows] : rows_)
            if (!in_.cfg.fleets.count(name))
                for (const auto* r : rows)
                    row_error(*r, kFleetCol, r->fleet, fmt::format("no such fleet in {} (it has: {})", in_.config_path, fleet_names()));
        return std::move(out_);
    }

private:
    static constexpr size_t kFleetCol = 1, kKeyCol = 2, kAddressCol = 3, kHostCol = 5, kTimeCol = 6;

    const PythonImportInput& in_;
    PythonImport out_;
    std::map<std::string, std::vector<const PythonRow*>> rows_;

    std::string column(size_t i) const {
        const auto& c = in_.table.columns;
        return i < c.size() && !c[i].empty() ? c[i] : std::string(python_columns()[i].accepted.front());
    }
    void row_error(const PythonRow& r, size_t col, std::string_view value, const std::string& why) {
        out_.errors.push_back(
            fmt::format("{}: {} row {}: {} '{}': {}", in_.db_path, in_.table.table, r.id, column(col), shown(value), why));
    }
    std::string fleet_names() const {
        std::string s;
        for (const auto& [n, f] : in_.cfg.fleets) s += (s.empty() ? "" : ", ") + n;
        return s.empty() ? "no fleet" : s;
    }

    void fleet(const std::string& name) {
        const model::Fleet& f = in_.cfg.fleets.at(name);
        const auto& rows = rows_[name];
        const std::string where = fmt::format("{} (fleet {}, {} client(s))", in_.db_path, name, rows.size());
        if (f.style != model::FleetStyle::subnet || !f.subnet) {
            out_.errors.push_back(fmt::format("{}: fleets.{} in {} has no subnet:; give it the Python manager's ip6: and subnet:", where,
                                              name, in_.config_path));
            return;
        }
        if (f.server != in_.node) {
            out_.errors.push_back(
                fmt::format("{}: the server of fleet {} is {}, not this node ({}); run the import on {} (or pass --node {})", where, name,
                            f.server, in_.node, f.server, f.server));
            return;
        }
        auto key = server_key(name, f, rows.size());
        if (!key) return;
        out_.server_keys.emplace(name, *key);
        out_.per_fleet[name] = 0;
        clients(name, f, rows, *key);
    }

    // The server's private key from wg_<fleet>.conf, after checking the file against the fleet.
    std::optional<model::SecretKey> server_key(const std::string& name, const model::Fleet& f, size_t count) {
        auto it = in_.confs.find(name);
        if (it == in_.confs.end() || !it->second.text) {
            const std::string path = it == in_.confs.end() ? "wg_" + name + ".conf" : it->second.path;
            if (count > 0)
                out_.errors.push_back(
                    fmt::format("{}: missing: it holds the server key fleet {}'s {} client(s) need to keep their sessions "
                                "(give its directory with --wg-conf-dir)",
                                path, name, count));
            else out_.notes.push_back(fmt::format("{}: missing, and no client in the database: fleet {} left as it is", path, name));
            return std::nullopt;
        }
        const std::string& path = it->second.path;
        const size_t before = out_.errors.size();
        WgQuickConf conf = parse_wg_quick(*it->second.text, path, out_.errors);
        if (!conf.private_key) {
            if (out_.errors.size() == before) out_.errors.push_back(fmt::format("{}: no PrivateKey in [Interface]", path));
            return std::nullopt;
        }
        const std::string device = "wg_" + name;
        if (f.interface != device)
            out_.errors.push_back(
                fmt::format("{}: fleets.{}.interface is '{}', but the Python manager's device is {}; remove interface: "
                            "(its default is {}) so that the device is adopted, keeping its sessions",
                            in_.config_path, name, f.interface, device, device));
        if (conf.listen_port && *conf.listen_port != f.port)
            out_.errors.push_back(fmt::format("{}: ListenPort is {}, but fleets.{}.port is {}; set port: {} (the clients dial that port)",
                                              path, *conf.listen_port, name, f.port, *conf.listen_port));
        if (f.ip6 && std::none_of(conf.addresses.begin(), conf.addresses.end(), [&](const model::Prefix& p) { return p.addr == *f.ip6; })) {
            std::string have;
            for (const auto& p : conf.addresses) have += (have.empty() ? "" : ", ") + p.str();
            out_.errors.push_back(
                fmt::format("{}: Address ({}) does not hold fleets.{}.ip6 {}; set ip6: to the server's address there (the "
                            "clients reach the server at it)",
                            path, have.empty() ? "none" : have, name, f.ip6->str()));
        }
        const model::Key pub = conf.private_key->public_key();
        if (f.server_public_key && *f.server_public_key != pub)
            out_.errors.push_back(
                fmt::format("{}: fleet {}'s server public key (public_key:, or keys_dir) is {}, but the PrivateKey of {} "
                            "belongs to {}; set public_key: {} (or remove it)",
                            in_.config_path, name, f.server_public_key->base64(), path, pub.base64(), pub.base64()));
        std::set<model::Key> in_db;
        for (const auto* r : rows_[name])
            if (auto k = model::Key::from_base64(trim(r->public_key))) in_db.insert(*k);
        for (const auto& p : conf.peers)
            if (!in_db.count(p.public_key))
                out_.notes.push_back(
                    fmt::format("{}:{}: [Peer] {} is not in {}: not imported (the Python manager drops such peers when it "
                                "starts)",
                                path, p.line, p.public_key.base64(), in_.db_path));
        if (out_.errors.size() != before) return std::nullopt;
        return conf.private_key;
    }

    void clients(const std::string& name, const model::Fleet& f, const std::vector<const PythonRow*>& rows,
                 const model::SecretKey& server) {
        // What the file's own members hold: the enrolled and other run-time members are not the file's.
        model::Fleet file_only = f;
        std::erase_if(file_only.peers, [](const auto& p) { return p.second.dynamic; });
        std::map<model::Key, std::string> file_keys;
        for (const auto& [n, m] : file_only.peers)
            if (m.public_key) file_keys.emplace(*m.public_key, "peer " + n);
        file_keys.emplace(server.public_key(), "the server " + f.server);
        std::map<model::IpAddr, std::string> file_addrs;
        for (const auto& [n, na] : plan::plan_fleet(name, file_only).nodes)
            for (const auto& a : na.addresses) file_addrs.emplace(a.addr, n);

        std::map<model::Key, const Client*> enrolled_keys;
        std::map<model::IpAddr, const Client*> enrolled_addrs;
        std::map<std::string, const Client*> enrolled_names;
        for (const auto& c : in_.enrolled) {
            if (c.fleet != name) continue;
            enrolled_keys.emplace(c.public_key, &c);
            enrolled_addrs.emplace(c.address, &c);
            if (c.host_name) enrolled_names.emplace(*c.host_name, &c);
        }

        std::map<model::Key, int64_t> seen_keys;
        std::map<model::IpAddr, int64_t> seen_addrs;
        std::map<std::string, int64_t> seen_names;
        for (const auto* r : rows) {
            const size_t before = out_.errors.size();
            auto key = model::Key::from_base64(trim(r->public_key));
            if (!key) row_error(*r, kKeyCol, r->public_key, "not a WireGuard public key (44 characters of base64)");
            auto addr = parse_client_address(r->address);
            if (!addr) row_error(*r, kAddressCol, r->address, "not an IP address");
            else if (!f.subnet->contains(*addr))
                row_error(*r, kAddressCol, r->address, fmt::format("outside fleets.{}.subnet {}", name, f.subnet->str()));
            else if (f.ip6 && *addr == *f.ip6)
                row_error(*r, kAddressCol, r->address, fmt::format("the server's own address (fleets.{}.ip6)", name));
            std::optional<std::string> host;
            if (r->host_name && !trim(*r->host_name).empty()) {
                host = std::string(trim(*r->host_name));
                if (!valid_host_name(*host)) row_error(*r, kHostCol, *host, "not a host name wg-fleet accepts (^[a-z0-9_-]{1,63}$)");
            }
            int64_t when = in_.now;
            if (r->timestamp) {
                if (auto t = parse_python_time(*r->timestamp, r->timestamp_is_number)) when = *t;
                else row_error(*r, kTimeCol, *r->timestamp, "not a time (YYYY-MM-DD HH:MM:SS[.ffffff] in UTC, or seconds since the epoch)");
            }
            if (key) {
                if (auto [it, fresh] = seen_keys.emplace(*key, r->id); !fresh)
                    row_error(*r, kKeyCol, r->public_key, fmt::format("the same key as row {}", it->second));
                if (auto it = file_keys.find(*key); it != file_keys.end())
                    row_error(*r, kKeyCol, r->public_key, fmt::format("the key of {} in {}", it->second, in_.config_path));
            }
            if (addr) {
                if (auto [it, fresh] = seen_addrs.emplace(*addr, r->id); !fresh)
                    row_error(*r, kAddressCol, r->address, fmt::format("the same address as row {}", it->second));
                if (auto it = file_addrs.find(*addr); it != file_addrs.end())
                    row_error(*r, kAddressCol, r->address, fmt::format("the address of {} in {}", it->second, in_.config_path));
            }
            if (host)
                if (auto [it, fresh] = seen_names.emplace(*host, r->id); !fresh)
                    row_error(*r, kHostCol, *host, fmt::format("the same host name as row {}", it->second));
            if (key && addr) against_enrolled(*r, *key, *addr, host, enrolled_keys, enrolled_addrs, enrolled_names);
            if (out_.errors.size() != before) continue;
            out_.clients.push_back(Client{.fleet = name,
                                          .public_key = *key,
                                          .address = *addr,
                                          .source_ip = std::string(trim(r->source_ip)),
                                          .host_name = host,
                                          .registered = when,
                                          .last_seen = when});
            ++out_.per_fleet[name];
        }
    }

    // A client serve has enrolled already is fine when it is this one (an import run again).
    void against_enrolled(const PythonRow& r, const model::Key& key, const model::IpAddr& addr, const std::optional<std::string>& host,
                          const std::map<model::Key, const Client*>& keys, const std::map<model::IpAddr, const Client*>& addrs,
                          const std::map<std::string, const Client*>& names) {
        const std::string store = store_path_hint();
        if (auto it = keys.find(key); it != keys.end() && it->second->address != addr)
            row_error(r, kKeyCol, r.public_key, fmt::format("enrolled in {} already at {}", store, it->second->address.str()));
        if (auto it = addrs.find(addr); it != addrs.end() && it->second->public_key != key)
            row_error(r, kAddressCol, r.address,
                      fmt::format("the address of client {} enrolled in {}", it->second->public_key.base64(), store));
        if (host)
            if (auto it = names.find(*host); it != names.end() && it->second->public_key != key)
                row_error(r, kHostCol, *host,
                          fmt::format("the host name of client {} enrolled in {}", it->second->public_key.base64(), store));
    }
    std::string store_path_hint() const { return store_path(in_.cfg.state_dir); }
};

}  // namespace

PythonImport plan_python_import(const PythonImportInput& in) { return Importer(in).run(); }

}  // namespace wgf::serve
