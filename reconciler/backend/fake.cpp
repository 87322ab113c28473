#include "backend/fake.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

namespace wgf::backend {

std::vector<std::string> FakeWireGuard::list_devices() {
    std::vector<std::string> out;
    for (const auto& [n, d] : devices) out.push_back(n);
    return out;
}

Result<WgDeviceLive> FakeWireGuard::read_device(const std::string& ifname) {
    reads.push_back(ifname);
    auto it = devices.find(ifname);
    if (it == devices.end()) return errno_error(ENODEV, "read WireGuard device " + ifname);
    return it->second;
}

Status FakeWireGuard::set_device(const WgDeviceChange& c) {
    sets.push_back(c);
    if (fail_next) {
        Error e = *fail_next;
        fail_next.reset();
        return e;
    }
    auto it = devices.find(c.ifname);
    if (it == devices.end()) return errno_error(ENODEV, "set WireGuard device " + c.ifname);
    auto& d = it->second.device;
    if (c.private_key) {
        d.public_key = c.private_key->public_key();
        it->second.private_key = c.private_key;
    }
    if (c.listen_port) d.listen_port = *c.listen_port;
    if (c.fwmark) it->second.fwmark = *c.fwmark ? std::optional<uint32_t>(*c.fwmark) : std::nullopt;
    if (c.replace_peers) d.peers.clear();
    for (const auto& pc : c.peers) {
        if (pc.remove) {
            d.peers.erase(pc.public_key);
            it->second.stats.erase(pc.public_key);
            continue;
        }
        auto pit = d.peers.find(pc.public_key);
        if (pit == d.peers.end()) {
            if (pc.update_only) continue;
            pit = d.peers.try_emplace(pc.public_key).first;
            pit->second.public_key = pc.public_key;
        }
        auto& p = pit->second;
        if (pc.endpoint) p.endpoint = pc.endpoint;
        if (pc.keepalive) p.keepalive = *pc.keepalive;
        if (pc.replace_allowed_ips) p.allowed_ips.clear();
        for (const auto& a : pc.allowed_ips) {
            // The kernel moves an allowed IP from whichever peer held it: model that exactly.
            for (auto& [k, other] : d.peers) other.allowed_ips.erase(a);
            p.allowed_ips.insert(a);
        }
    }
    return Status::ok();
}

Status FakeWireGuard::create_device(const std::string& ifname) {
    if (devices.count(ifname)) return errno_error(EEXIST, "create WireGuard device " + ifname);
    WgDeviceLive d;
    d.device.name = ifname;
    devices.emplace(ifname, std::move(d));
    if (links)
        links->links[ifname] = LinkLive{
            .name = ifname, .ifindex = static_cast<int>(links->links.size() + 100), .kind = "wireguard", .mtu = 1420, .up = false};
    return Status::ok();
}

Status FakeWireGuard::delete_device(const std::string& ifname) {
    if (!devices.erase(ifname)) return errno_error(ENODEV, "delete WireGuard device " + ifname);
    if (links) {
        links->links.erase(ifname);
        links->addresses.erase(ifname);
        std::erase_if(links->routes, [&](const model::Route& r) { return r.dev == ifname; });
    }
    return Status::ok();
}

Status FakeLinks::mutate(const std::string& call) {
    calls.push_back(call);
    if (fail_next) {
        Error e = *fail_next;
        fail_next.reset();
        return e;
    }
    return Status::ok();
}

Result<std::optional<LinkLive>> FakeLinks::read_link(const std::string& name) {
    auto it = links.find(name);
    if (it == links.end()) return std::optional<LinkLive>{};
    return std::optional<LinkLive>{it->second};
}

Result<model::AddressSet> FakeLinks::read_addresses(const std::string& name) {
    auto it = addresses.find(name);
    if (it == addresses.end()) return model::AddressSet{};
    return model::AddressSet(it->second.begin(), it->second.end());
}

Result<std::set<model::Route>> FakeLinks::read_routes(const std::set<std::string>& devices) {
    std::set<model::Route> out;
    for (const auto& r : routes)
        if (devices.count(r.dev)) out.insert(out.end(), r);
    return out;
}

Status FakeLinks::set_mtu(const std::string& name, uint32_t mtu) {
    if (auto s = mutate(fmt::format("set_mtu {} {}", name, mtu)); !s) return s;
    if (!links.count(name)) return errno_error(ENODEV, "set mtu of " + name);
    links[name].mtu = mtu;
    return Status::ok();
}

Status FakeLinks::set_up(const std::string& name, bool up) {
    if (auto s = mutate(fmt::format("set_up {} {}", name, up)); !s) return s;
    if (!links.count(name)) return errno_error(ENODEV, "set up " + name);
    links[name].up = up;
    return Status::ok();
}

Status FakeLinks::add_address(const std::string& name, const Prefix& a) {
    if (auto s = mutate(fmt::format("add_address {} {}", name, a)); !s) return s;
    if (!addresses[name].insert(a).second) return errno_error(EEXIST, fmt::format("add address {} dev {}", a, name));
    return Status::ok();
}

Status FakeLinks::del_address(const std::string& name, const Prefix& a) {
    if (auto s = mutate(fmt::format("del_address {} {}", name, a)); !s) return s;
    if (!addresses[name].erase(a)) return errno_error(EADDRNOTAVAIL, fmt::format("delete address {} dev {}", a, name));
    return Status::ok();
}

Status FakeLinks::add_route(const model::Route& r) {
    if (auto s = mutate(fmt::format("add_route {} {}", r.dst, r.dev)); !s) return s;
    if (!routes.insert(r).second) return errno_error(EEXIST, fmt::format("add route {} dev {}", r.dst, r.dev));
    return Status::ok();
}

Result<std::set<model::PolicyRule>> FakeLinks::read_rules() { return rules; }

Status FakeLinks::add_rule(const model::PolicyRule& r) {
    if (auto s = mutate(fmt::format("add_rule {} {}", r.family, r.priority)); !s) return s;
    if (!rules.insert(r).second) return errno_error(EEXIST, fmt::format("add rule priority {}", r.priority));
    return Status::ok();
}

Status FakeLinks::del_rule(const model::PolicyRule& r) {
    if (auto s = mutate(fmt::format("del_rule {} {}", r.family, r.priority)); !s) return s;
    if (!rules.erase(r)) return errno_error(ENOENT, fmt::format("delete rule priority {}", r.priority));
    return Status::ok();
}

Status FakeLinks::del_route(const model::Route& r) {
    if (auto s = mutate(fmt::format("del_route {} {}", r.dst, r.dev)); !s) return s;
    if (!routes.erase(r)) return errno_error(ESRCH, fmt::format("delete route {} dev {}", r.dst, r.dev));
    return Status::ok();
}

Result<std::string> FakeSysctls::read(const std::string& key) {
    auto it = values.find(key);
    if (it == values.end()) return errno_error(ENOENT, "read sysctl " + key);
    return it->second;
}

Status FakeSysctls::write(const std::string& key, const std::string& value) {
    writes.push_back(key + "=" + value);
    values[key] = value;
    return Status::ok();
}

Result<std::vector<std::string>> FakeSysctls::list(const std::string& dir) {
    std::set<std::string> out;
    const std::string prefix = dir + "/";
    for (auto it = values.lower_bound(prefix); it != values.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        out.insert(it->first.substr(prefix.size(), it->first.find('/', prefix.size()) - prefix.size()));
    return std::vector<std::string>(out.begin(), out.end());
}

namespace {

// A change of the fake's ruleset moves its generation, when it has one.
void move_generation(std::string& generation) {
    if (!generation.empty()) generation += "+";
}

}  // namespace

Result<FirewallLive> FakeFirewall::read() {
    ++table_reads;
    return FirewallLive{.rules = rules,
                        .damage = damage,
                        .foreign_drops = foreign_drops,
                        .legacy_tables = {},
                        .foreign_rules = foreign_rules,
                        .generation = generation,
                        .table_unchanged = false};
}

Result<FirewallLive> FakeFirewall::read_if_changed(const std::string& g) {
    if (generation.empty() || g != generation) return read();
    return FirewallLive{.rules = {},
                        .damage = {},
                        .foreign_drops = foreign_drops,
                        .legacy_tables = {},
                        .foreign_rules = foreign_rules,
                        .generation = generation,
                        .table_unchanged = true};
}

Status FakeFirewall::apply(const FirewallChange& c) {
    move_generation(generation);
    batches.push_back(c);
    damage.clear();  // as in Nft: every apply repairs all the damage there is
    for (const auto& id : c.remove) rules.erase(id);
    for (const auto& r : c.add) rules[r.id] = r;
    return Status::ok();
}

Status FakeFirewall::remove_all() {
    move_generation(generation);
    rules.clear();
    damage.clear();
    return Status::ok();
}

Status FakeFirewall::add_foreign(const model::ForeignRule& r) {
    move_generation(generation);
    foreign_rules[r.key()] = r;
    return Status::ok();
}

Status FakeFirewall::remove_foreign(const model::ForeignRule& r) {
    move_generation(generation);
    foreign_rules.erase(r.key());
    return Status::ok();
}

Result<std::optional<FileLive>> FakeFiles::read(const std::string& path) {
    auto it = files.find(path);
    if (it == files.end()) return std::optional<FileLive>{};
    return std::optional<FileLive>{it->second};
}

Status FakeFiles::write(const model::ManagedFile& f) {
    if (auto it = files.find(f.path); it != files.end() && (!it->second.has_marker || !it->second.not_regular.empty()))
        return Error{EEXIST, f.path + " exists and was not written by wg-fleet; left as is"};
    writes.push_back(f.path);
    files[f.path] = FileLive{.file = f, .has_marker = model::has_file_marker(f.content), .not_regular = {}, .uid = 0, .gid = 0};
    return Status::ok();
}

Status FakeFiles::remove(const std::string& path) {
    auto it = files.find(path);
    if (it == files.end()) return errno_error(ENOENT, "remove " + path);
    if (!it->second.has_marker) return Error{EEXIST, path + " was not written by wg-fleet; left as is"};
    files.erase(it);
    return Status::ok();
}

Result<FilePlace> FakeFiles::place(const std::string& path) {
    return FilePlace{.dev = 0, .ino = 0, .rest = std::filesystem::path(path).lexically_normal().string()};
}

Result<bool> FakeFiles::within(const std::string& path, const std::string& dir) {
    auto a = std::filesystem::path(path).lexically_normal().string();
    auto b = std::filesystem::path(dir).lexically_normal().string();
    while (b.size() > 1 && b.back() == '/') b.pop_back();
    return a == b || a.compare(0, b.size() + 1, b + "/") == 0;
}

Result<std::optional<SecretKey>> FakeKeyStore::load(const std::string& path) {
    auto it = keys.find(path);
    if (it == keys.end()) return std::optional<SecretKey>{};
    return std::optional<SecretKey>{it->second};
}

Result<SecretKey> FakeKeyStore::load_or_generate(const std::string& path) {
    auto it = keys.find(path);
    if (it == keys.end()) it = keys.emplace(path, SecretKey::generate()).first;
    return it->second;
}

Status FakeKeyStore::publish(const std::string& path, const Key& public_key) {
    published.insert_or_assign(path, public_key);
    return Status::ok();
}

Result<bool> FakeKeyStore::install(const std::string& path, const SecretKey& key) { return keys.emplace(path, key).second; }

Status FakeKeyStore::promote(const std::string& next_file, const std::string& key_file) {
    auto it = keys.find(next_file);
    if (it == keys.end()) return Error{ENOENT, "promote " + next_file + ": no such key"};
    keys.insert_or_assign(key_file, it->second);
    keys.erase(it);
    return Status::ok();
}

Status FakeKeyStore::unpublish(const std::string& path) {
    published.erase(path);
    return Status::ok();
}

std::vector<NextKeyFile> FakeNextKeys::read(const std::string&, const std::string& fleet) {
    auto it = by_fleet.find(fleet);
    return it == by_fleet.end() ? std::vector<NextKeyFile>{} : it->second;
}

Result<plan::Ownership> FakeStateStore::load() { return owned; }

Status FakeStateStore::save(const plan::Ownership& o) {
    if (fail_save) return *fail_save;
    owned = o;
    ++saves;
    return Status::ok();
}

void FakeJournal::record(const std::string& op_line, const Status& result) {
    lines.push_back(result ? "ok " + op_line : "error " + op_line + ": " + result.error().message);
}

void FakeJournal::flush() { ++flushes; }

std::optional<model::IpAddr> FakeResolver::resolve(const std::string& host) {
    asked.push_back(host);
    if (auto a = model::IpAddr::parse(host)) return a;
    auto it = names.find(host);
    if (it == names.end()) return std::nullopt;
    return it->second;
}

Status FakeCommands::run(const std::string& command) {
    runs.push_back(command);
    if (fail) return *fail;
    return Status::ok();
}

}  // namespace wgf::backend
