// In-memory fakes of every backend, for tests of pure logic (diff, order, apply loop). They keep
// state in plain maps and record every call, so a test can assert what would have been sent.
// They are never a substitute for the real layer's namespace tests.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/journal.hpp"
#include "backend/kept_firewall.hpp"
#include "backend/keys.hpp"
#include "backend/resolver.hpp"
#include "backend/state_store.hpp"

namespace wgf::backend {

class FakeLinks;

class FakeWireGuard : public WireGuard {
public:
    // When set, creating or deleting a device also creates or deletes its link, as the kernel does.
    FakeLinks* links = nullptr;
    std::map<std::string, WgDeviceLive> devices;
    std::vector<WgDeviceChange> sets;  // every set_device call, in order
    std::vector<std::string> reads;    // every read_device call, in order
    std::optional<Error> fail_next;    // the next mutating call fails with this

    std::vector<std::string> list_devices() override;
    Result<WgDeviceLive> read_device(const std::string& ifname) override;
    Status set_device(const WgDeviceChange& change) override;
    Status create_device(const std::string& ifname) override;
    Status delete_device(const std::string& ifname) override;
};

class FakeLinks : public Links {
public:
    std::map<std::string, LinkLive> links;
    std::map<std::string, std::set<Prefix>> addresses;
    std::set<model::Route> routes;   // protocol kRouteProtocol, on any device
    std::vector<std::string> calls;  // "add_address wg0 fd00::1/64", ...
    std::optional<Error> fail_next;

    Result<std::optional<LinkLive>> read_link(const std::string& name) override;
    Result<model::AddressSet> read_addresses(const std::string& name) override;
    Result<std::set<model::Route>> read_routes(const std::set<std::string>& devices) override;
    Status set_mtu(const std::string& name, uint32_t mtu) override;
    Status set_up(const std::string& name, bool up) override;
    Status add_address(const std::string& name, const Prefix& addr) override;
    Status del_address(const std::string& name, const Prefix& addr) override;
    Status add_route(const model::Route& route) override;
    Status del_route(const model::Route& route) override;
    Result<std::set<model::PolicyRule>> read_rules() override;
    Status add_rule(const model::PolicyRule& rule) override;
    Status del_rule(const model::PolicyRule& rule) override;

    std::set<model::PolicyRule> rules;  // ours (protocol kRouteProtocol)

private:
    Status mutate(const std::string& call);
};

class FakeSysctls : public Sysctls {
public:
    std::map<std::string, std::string> values;
    std::vector<std::string> writes;

    Result<std::string> read(const std::string& key) override;
    Status write(const std::string& key, const std::string& value) override;
    // The next path components below dir among the keys of `values`.
    Result<std::vector<std::string>> list(const std::string& dir) override;
};

class FakeFirewall : public Firewall {
public:
    std::map<std::string, model::FwRule> rules;
    std::vector<model::FwDamage> damage;
    std::vector<model::ForeignDrop> foreign_drops;            // other tables' dropping chains, as read
    std::map<std::string, model::ForeignRule> foreign_rules;  // ours in their chains, by key()
    std::vector<FirewallChange> batches;
    // The ruleset's generation, as Nft names it: empty (the default) names none, so nothing is
    // kept of the table. Set, every change moves it (as every commit does), and read_if_changed
    // does not read the table while it is the one given.
    std::string generation;
    int table_reads = 0;  // reads that read the table

    Result<FirewallLive> read() override;
    Result<FirewallLive> read_if_changed(const std::string& generation) override;
    Status apply(const FirewallChange& change) override;
    Status remove_all() override;
    Status add_foreign(const model::ForeignRule& rule) override;
    Status remove_foreign(const model::ForeignRule& rule) override;
};

class FakeKeptFirewall : public KeptFirewallStore {
public:
    std::optional<KeptFirewall> kept;
    int saves = 0;

    std::optional<KeptFirewall> load() override { return kept; }
    Status save(const KeptFirewall& k) override {
        kept = k;
        ++saves;
        return Status::ok();
    }
};

class FakeFiles : public Files {
public:
    std::map<std::string, FileLive> files;
    std::vector<std::string> writes;

    Result<std::optional<FileLive>> read(const std::string& path) override;
    Status write(const model::ManagedFile& file) override;
    Status remove(const std::string& path) override;
    // Lexical: the fake has no links or mounts.
    Result<FilePlace> place(const std::string& path) override;
    Result<bool> within(const std::string& path, const std::string& dir) override;
};

class FakeCommands : public Commands {
public:
    std::vector<std::string> runs;  // every command run, in order
    std::optional<Error> fail;      // every run fails with this

    Status run(const std::string& command) override;
};

// Keys by path; a generated key is a fresh random one.
class FakeKeyStore : public KeyStore {
public:
    std::map<std::string, SecretKey> keys;
    std::map<std::string, Key> published;  // by path

    Result<std::optional<SecretKey>> load(const std::string& path) override;
    Result<SecretKey> load_or_generate(const std::string& path) override;
    Status publish(const std::string& path, const Key& public_key) override;
    Result<bool> install(const std::string& path, const SecretKey& key) override;
    Status promote(const std::string& next_file, const std::string& key_file) override;
    Status unpublish(const std::string& path) override;
};

// Next keys by fleet, as given.
class FakeNextKeys : public NextKeys {
public:
    std::map<std::string, std::vector<NextKeyFile>> by_fleet;
    std::vector<NextKeyFile> read(const std::string& keys_dir, const std::string& fleet) override;
};

class FakeStateStore : public StateStore {
public:
    plan::Ownership owned;
    int saves = 0;
    std::optional<Error> fail_save;  // every save fails with this

    Result<plan::Ownership> load() override;
    Status save(const plan::Ownership& o) override;
};

// "ok LINE" or "error LINE: MESSAGE", in order; flushes counted.
class FakeJournal : public Journal {
public:
    std::vector<std::string> lines;
    int flushes = 0;

    void record(const std::string& op_line, const Status& result) override;
    void flush() override;
};

// Resolves only the names it is given (and address literals); every name asked is recorded.
class FakeResolver : public Resolver {
public:
    std::map<std::string, model::IpAddr> names;
    std::vector<std::string> asked;

    std::optional<model::IpAddr> resolve(const std::string& host) override;
};

}  // namespace wgf::backend
