// Fault injection on the in-memory fakes: a backend that fails its k-th change, for every k of a
// realistic plan (a controller with several peers, addresses, routes, firewall rules and a hosts
// file; from nothing, and from a converged fleet to an edited one). For each k:
//   - the report says exactly what was done and what not: what it calls not done is what a fresh
//     read still finds to do, and nothing it calls done is still to do;
//   - the ownership record covers everything on the machine wg-fleet made, at every change (as
//     if the run had been killed there) and after the failure;
//   - the next apply converges, and a fresh plan is empty.
// Also: a failed write of the ownership record applies nothing; after a failed set, only
// endpoints that were really set are recorded (so the roaming rule still applies the rest).
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "apply/engine.hpp"
#include "config/parse.hpp"
#include "fixture.hpp"
#include "plan/sysctls.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using namespace wgf::test;

namespace {

using MemState = backend::FakeStateStore;
using NoDns = backend::FakeResolver;  // knows no names

// Counts every change sent to any backend and fails the k-th (k = 0: none). A failing WireGuard
// set first applies the first half of its peers, as a set split over several netlink messages
// or UAPI lines does. Before each change it checks that the ownership record already covers
// what the change creates: a run killed right there must leave nothing unowned.
struct Injector {
    size_t fail_at = 0;
    bool fail_peer_set = false;  // fail the first WireGuard set that changes peers instead
    size_t count = 0;
    MemState* state = nullptr;
    std::vector<std::string> unowned;  // changes made before the record covered them

    size_t kill_at = 0;  // the process "dies" right after this change (an exception unwinds the run)
    struct Killed {};

    bool fail_now() { return ++count == fail_at; }
    // One change: fails when it is the k-th, else is made; the run dies after it when it is kill_at.
    template <class F>
    backend::Status step(const std::string& what, F&& make) {
        if (fail_now()) return injected(what);
        backend::Status s = make();
        if (count == kill_at) throw Killed{};
        return s;
    }
    static backend::Error injected(const std::string& what) { return backend::Error{EIO, what + ": injected failure (EIO)"}; }
    void require_owned_interface(const std::string& what, const std::string& ifname) {
        if (!state->owned.interfaces.count(ifname)) unowned.push_back(what);
    }
};

struct FaultWg : backend::WireGuard {
    backend::WireGuard& in;
    Injector& inj;
    FaultWg(backend::WireGuard& i, Injector& j) : in(i), inj(j) {}
    std::vector<std::string> list_devices() override { return in.list_devices(); }
    backend::Result<backend::WgDeviceLive> read_device(const std::string& n) override { return in.read_device(n); }
    backend::Status set_device(const backend::WgDeviceChange& c) override {
        for (const auto& p : c.peers) {
            auto it = inj.state->owned.peers.find(c.ifname);
            if (!p.remove && (it == inj.state->owned.peers.end() || !it->second.count(p.public_key)))
                inj.unowned.push_back("peer " + p.public_key.base64() + " on " + c.ifname);
        }
        if (!(inj.fail_peer_set && !c.peers.empty()) && inj.count + 1 != inj.fail_at)
            return inj.step("set", [&] { return in.set_device(c); });
        ++inj.count;
        inj.fail_peer_set = false;
        backend::WgDeviceChange half = c;
        half.peers.resize(c.peers.size() / 2);
        (void)in.set_device(half);
        return Injector::injected("set WireGuard device " + c.ifname);
    }
    backend::Status create_device(const std::string& n) override {
        inj.require_owned_interface("device " + n, n);
        return inj.step("create " + n, [&] { return in.create_device(n); });
    }
    backend::Status delete_device(const std::string& n) override {
        return inj.step("delete " + n, [&] { return in.delete_device(n); });
    }
};

struct FaultLinks : backend::Links {
    backend::Links& in;
    Injector& inj;
    FaultLinks(backend::Links& i, Injector& j) : in(i), inj(j) {}
    backend::Result<std::optional<backend::LinkLive>> read_link(const std::string& n) override { return in.read_link(n); }
    backend::Result<model::AddressSet> read_addresses(const std::string& n) override { return in.read_addresses(n); }
    backend::Result<std::set<model::Route>> read_routes(const std::set<std::string>& d) override { return in.read_routes(d); }
    backend::Status set_mtu(const std::string& n, uint32_t m) override {
        return inj.step("mtu", [&] { return in.set_mtu(n, m); });
    }
    backend::Status set_up(const std::string& n, bool u) override {
        return inj.step("up", [&] { return in.set_up(n, u); });
    }
    backend::Status add_address(const std::string& n, const model::Prefix& a) override {
        inj.require_owned_interface("address on " + n, n);
        return inj.step("add address", [&] { return in.add_address(n, a); });
    }
    backend::Status del_address(const std::string& n, const model::Prefix& a) override {
        return inj.step("del address", [&] { return in.del_address(n, a); });
    }
    backend::Status add_route(const model::Route& r) override {
        inj.require_owned_interface("route " + r.dst.str() + " dev " + r.dev, r.dev);
        return inj.step("add route", [&] { return in.add_route(r); });
    }
    backend::Status del_route(const model::Route& r) override {
        return inj.step("del route", [&] { return in.del_route(r); });
    }
    backend::Result<std::set<model::PolicyRule>> read_rules() override { return in.read_rules(); }
    backend::Status add_rule(const model::PolicyRule& r) override {
        return inj.step("add rule", [&] { return in.add_rule(r); });
    }
    backend::Status del_rule(const model::PolicyRule& r) override {
        return inj.step("del rule", [&] { return in.del_rule(r); });
    }
};

struct FaultSysctls : backend::Sysctls {
    backend::Sysctls& in;
    Injector& inj;
    FaultSysctls(backend::Sysctls& i, Injector& j) : in(i), inj(j) {}
    backend::Result<std::string> read(const std::string& k) override { return in.read(k); }
    backend::Result<std::vector<std::string>> list(const std::string& dir) override { return in.list(dir); }
    backend::Status write(const std::string& k, const std::string& v) override {
        return inj.step("sysctl", [&] { return in.write(k, v); });
    }
};

struct FaultFirewall : backend::Firewall {
    backend::Firewall& in;
    Injector& inj;
    FaultFirewall(backend::Firewall& i, Injector& j) : in(i), inj(j) {}
    backend::Result<backend::FirewallLive> read() override { return in.read(); }
    backend::Status apply(const backend::FirewallChange& c) override {
        return inj.step("nft batch", [&] { return in.apply(c); });
    }
    backend::Status remove_all() override {
        return inj.step("nft delete", [&] { return in.remove_all(); });
    }
    backend::Status add_foreign(const model::ForeignRule& r) override {
        return inj.step("nft insert", [&] { return in.add_foreign(r); });
    }
    backend::Status remove_foreign(const model::ForeignRule& r) override {
        return inj.step("nft delete rule", [&] { return in.remove_foreign(r); });
    }
};

struct FaultFiles : backend::Files {
    backend::Files& in;
    Injector& inj;
    FaultFiles(backend::Files& i, Injector& j) : in(i), inj(j) {}
    backend::Result<std::optional<backend::FileLive>> read(const std::string& p) override { return in.read(p); }
    backend::Status write(const model::ManagedFile& f) override {
        if (!inj.state->owned.files.count(f.path)) inj.unowned.push_back("file " + f.path);
        return inj.step("write " + f.path, [&] { return in.write(f); });
    }
    backend::Status remove(const std::string& p) override {
        return inj.step("remove " + p, [&] { return in.remove(p); });
    }
    backend::Result<backend::FilePlace> place(const std::string& p) override { return in.place(p); }
    backend::Result<bool> within(const std::string& p, const std::string& dir) override { return in.within(p, dir); }
};

const char* kBefore = R"(
state_dir: /state
hosts_file: /run/test-hosts
fleets:
  mesh:
    ipv4: 10.60.0.0/24
    controllers:
      c1: { endpoint: 198.51.100.1 }
      c2: { endpoint: 198.51.100.2, public_key: "AV9+a8Wur0g3JAieklLME7UJUaa2lBJSJ2XP9NeAMG4=" }
    peers:
      p1: { controller: c1, public_key: "L1BSyf0VsZoYxYTQE2NWgZhhPww06EQJ73k4cJoVnsI=", endpoint: "203.0.113.1:51820", routes: [10.20.0.0/16] }
      p2: { controller: c1, public_key: "lAkd1koh/+lCFLxtF97rQ4c6XPLwpxtLXKqaXIG2ln0=", routes: [10.21.0.0/16] }
      p3: { controller: c1, public_key: "iNv2EpcsWUosL23eST7xxM0nrbqMNubr0AuJ/xQ6umE=" }
      p4: { controller: c2, public_key: "HZKtS2mH+gNHzF0vts+eR8g/T2yus7Xvb2KXMFKJIcM=", routes: [10.22.0.0/16] }
      p5: { controller: c1, public_key: "+4SMmbmkPseGaiPqAAwZOaFo9f8XMUoLiMe+cR1+99A=" }
forwards:
  - { name: ssh, node: c1, proto: tcp, port: 2201, to: p1, to_port: 22 }
)";

// p3 revoked, p1 moved, p2's LAN moves to p5, p6 joins with a LAN, the forward goes to p6.
const char* kAfter = R"(
state_dir: /state
hosts_file: /run/test-hosts
fleets:
  mesh:
    ipv4: 10.60.0.0/24
    controllers:
      c1: { endpoint: 198.51.100.1 }
      c2: { endpoint: 198.51.100.2, public_key: "AV9+a8Wur0g3JAieklLME7UJUaa2lBJSJ2XP9NeAMG4=" }
    peers:
      p1: { controller: c1, public_key: "L1BSyf0VsZoYxYTQE2NWgZhhPww06EQJ73k4cJoVnsI=", endpoint: "203.0.113.9:51820", routes: [10.20.0.0/16] }
      p2: { controller: c1, public_key: "lAkd1koh/+lCFLxtF97rQ4c6XPLwpxtLXKqaXIG2ln0=" }
      p4: { controller: c2, public_key: "HZKtS2mH+gNHzF0vts+eR8g/T2yus7Xvb2KXMFKJIcM=", routes: [10.22.0.0/16] }
      p5: { controller: c1, public_key: "+4SMmbmkPseGaiPqAAwZOaFo9f8XMUoLiMe+cR1+99A=", routes: [10.21.0.0/16] }
      p6: { controller: c1, public_key: "Wj34nae/I9cexj8RHZFxw/BQRzgKF4EvICSOY8/e1Ps=", routes: [10.23.0.0/16] }
forwards:
  - { name: ssh, node: c1, proto: tcp, port: 2201, to: p6, to_port: 22 }
)";

struct Fleet {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    std::unique_ptr<plan::Fleetwide> fw;
    explicit Fleet(const char* text) {
        parsed = config::parse_text(text, "fleet.yaml", sources, diags);
        REQUIRE_FALSE(diags.has_errors());
        fw = std::make_unique<plan::Fleetwide>(parsed.config);
        plan::validate(parsed.config, fw->plan, parsed.tree, diags);
        INFO(diags.all().size());
        REQUIRE_FALSE(diags.has_errors());
    }
};

// A machine whose every backend goes through the injector.
struct Rig {
    FakeMachine m;
    MemState state;
    NoDns dns;
    Injector inj;
    FaultWg wg{m.wg, inj};
    FaultLinks links{m.links, inj};
    FaultSysctls sysctls{m.sysctls, inj};
    FaultFirewall firewall{m.firewall, inj};
    FaultFiles files{m.files, inj};
    apply::Backends b{wg, links, sysctls, firewall, files};
    apply::Engine e{b, m.keys, dns, state, nullptr, {}};
    Rig() {
        inj.state = &state;
        m.keys.keys.emplace("/state/mesh.key", model::SecretKey::generate());
    }
    apply::RunResult run(const Fleet& f, apply::Mode mode = apply::Mode::apply) { return e.run(*f.fw, "c1", mode, m.now); }
};

// What an op acts on, without the values it reads from the live side (which a partial apply
// changes): kind, interface, and the peer, address, route, sysctl, rule or file.
std::string identity(const plan::Op& op) {
    std::string id = std::string(plan::kind(op)) + " " + plan::interface_of(op) + " ";
    if (auto* o = std::get_if<plan::OpAddPeer>(&op)) return id + o->peer.public_key.base64();
    if (auto* o = std::get_if<plan::OpRemovePeer>(&op)) return id + o->public_key.base64();
    if (auto* o = std::get_if<plan::OpUpdatePeer>(&op)) return id + o->public_key.base64();
    if (auto* o = std::get_if<plan::OpAddAddress>(&op)) return id + o->addr.str();
    if (auto* o = std::get_if<plan::OpDelAddress>(&op)) return id + o->addr.str();
    if (auto* o = std::get_if<plan::OpAddRoute>(&op)) return id + o->route.dst.str();
    if (auto* o = std::get_if<plan::OpDelRoute>(&op)) return id + o->route.dst.str();
    if (auto* o = std::get_if<plan::OpSetSysctl>(&op)) return id + o->key;
    if (auto* o = std::get_if<plan::OpAddRule>(&op)) return id + o->rule.id;
    if (auto* o = std::get_if<plan::OpDelRule>(&op)) return id + o->id;
    if (auto* o = std::get_if<plan::OpWriteFile>(&op)) return id + o->file.path;
    if (auto* o = std::get_if<plan::OpRemoveFile>(&op)) return id + o->path;
    return id;
}

// Everything on the machine that wg-fleet made is in the record.
void check_nothing_orphaned(Rig& r) {
    const auto& o = r.state.owned;
    for (const auto& [name, d] : r.m.wg.devices) {
        INFO("device " << name);
        REQUIRE(o.interfaces.count(name));
        for (const auto& [k, p] : d.device.peers) {
            INFO("peer " << k.base64());
            CHECK(o.peers.count(name));
            if (o.peers.count(name)) CHECK(o.peers.at(name).count(k));
        }
    }
    for (const auto& rt : r.m.links.routes) {
        INFO("route " << rt.dst.str() << " dev " << rt.dev);
        CHECK(o.interfaces.count(rt.dev));
    }
    for (const auto& [path, f] : r.m.files.files) {
        INFO("file " << path);
        CHECK(o.files.count(path));
    }
}

// Runs `to` from the state `from` left (nothing when null), failing the k-th change; checks the
// report, the record and the next apply. Returns how many changes the run made (k past it: none failed).
size_t run_with_fault(const char* from, const char* to, size_t k) {
    Rig r;
    if (from) {
        Fleet before(from);
        auto first = r.run(before);
        REQUIRE(first.ok());
    }
    Fleet after(to);
    r.inj.count = 0;
    r.inj.fail_at = k;
    auto res = r.run(after);
    CHECK(r.inj.unowned.empty());
    for (const auto& u : r.inj.unowned) INFO("made before the record covered it: " << u);
    REQUIRE_FALSE(res.error);
    REQUIRE(res.applied);
    const size_t changes = r.inj.count;
    if (k == 0 || k > changes) {
        CHECK(res.ok());
        return changes;
    }
    INFO("failing change " << k << " of the plan:\n"
                           << [&] {
                                  std::string s;
                                  for (const auto& op : res.plan.ops) s += "  " + plan::describe(op) + "\n";
                                  return s;
                              }());
    REQUIRE_FALSE(res.applied->ok());
    CHECK(res.applied->done.size() + res.applied->not_done.size() == res.plan.ops.size());

    // The report against a fresh read: not done = still to do; done = not still to do.
    REQUIRE(res.leftover);
    std::set<std::string> still, not_done, done;
    for (const auto& op : res.leftover->ops) still.insert(identity(op));
    std::map<std::string, std::string> by_line;
    for (const auto& op : res.plan.ops) by_line[plan::describe(op)] = identity(op);
    for (const auto& l : res.applied->not_done) not_done.insert(by_line.at(l));
    for (const auto& l : res.applied->done) done.insert(by_line.at(l));
    CHECK(not_done == still);
    for (const auto& d : done) {
        INFO("reported done: " << d);
        CHECK((!still.count(d) || not_done.count(d)));
    }

    check_nothing_orphaned(r);

    // The next apply converges, and a plan afterwards is empty.
    r.inj.fail_at = 0;
    auto next = r.run(after);
    INFO((next.applied && next.applied->error ? next.applied->error->message : std::string()));
    REQUIRE(next.ok());
    REQUIRE(next.leftover);
    CHECK(next.leftover->empty());
    auto plan = r.run(after, apply::Mode::plan);
    CHECK(plan.plan.empty());
    check_nothing_orphaned(r);
    // The record shrank to the fleet: the revoked member is no longer claimed.
    // Every host-wide sysctl the fleet needs started elsewhere on this machine, so wg-fleet set
    // each one and records it, with the value it set, to restore it once no longer needed (those
    // of its own interfaces go with the interface).
    auto want = plan::ownership_after(next.desired, next.labels);
    std::set<std::string> recorded, needed;
    for (const auto& [key, rec] : r.state.owned.sysctls) {
        recorded.insert(key);
        CHECK(rec.value == next.desired.sysctls.at(key));
    }
    for (const auto& [key, v] : next.desired.sysctls)
        if (!next.desired.interfaces.count(plan::conf_interface(key))) needed.insert(key);
    CHECK(recorded == needed);
    want.sysctls = r.state.owned.sysctls;
    CHECK(r.state.owned == want);
    return changes;
}

}  // namespace

TEST_CASE("faults: every change of a first apply failing in turn is reported exactly, leaves nothing unowned, and the next apply converges",
          "[faults]") {
    size_t changes = run_with_fault(nullptr, kAfter, 0);
    REQUIRE(changes >= 10);
    for (size_t k = 1; k <= changes; ++k) {
        DYNAMIC_SECTION("change " << k << " of " << changes) { run_with_fault(nullptr, kAfter, k); }
    }
}

TEST_CASE(
    "faults: every change of an edit (revoke, move, claim, add) failing in turn is reported exactly, leaves nothing unowned, "
    "and the next apply converges",
    "[faults]") {
    size_t changes = run_with_fault(kBefore, kAfter, 0);
    REQUIRE(changes >= 4);  // one set of the peers, the new route, one nft batch, the hosts file
    for (size_t k = 1; k <= changes; ++k) {
        DYNAMIC_SECTION("change " << k << " of " << changes) { run_with_fault(kBefore, kAfter, k); }
    }
}

TEST_CASE("faults: a failed write of the ownership record applies nothing and fails the run", "[faults][state]") {
    Rig r;
    Fleet f(kAfter);
    r.state.fail_save = backend::Error{ENOSPC, "write /state/state.json: No space left on device (ENOSPC)"};
    auto res = r.run(f);
    REQUIRE(res.error);
    CHECK(res.error->message.find("No space left on device") != std::string::npos);
    CHECK(res.error->message.find("nothing applied") != std::string::npos);
    CHECK_FALSE(res.applied);
    CHECK(r.inj.count == 0);
    CHECK(r.m.wg.devices.empty());
    CHECK(r.m.files.files.empty());
}

namespace {

// Killed (an exception unwinds the run: nothing after the change happens, as with SIGKILL) right
// after the k-th change of `from_scratch ? nothing -> kBefore : kBefore -> kAfter`; then kAfter,
// which revokes p3, is applied: it converges, p3's peer is gone, nothing is left unowned.
void kill_then_apply(bool from_scratch, size_t k) {
    Rig r;
    Fleet before(kBefore), after(kAfter);
    if (!from_scratch) REQUIRE(r.run(before).ok());
    r.inj.count = 0;
    r.inj.kill_at = k;
    bool killed = false;
    try {
        r.run(from_scratch ? before : after);
    } catch (const Injector::Killed&) {
        killed = true;
    }
    CHECK(killed);
    CHECK(r.inj.unowned.empty());
    check_nothing_orphaned(r);
    r.inj.kill_at = 0;
    auto res = r.run(after);
    REQUIRE(res.ok());
    REQUIRE(res.leftover);
    CHECK(res.leftover->empty());
    auto p3 = *model::Key::from_base64("iNv2EpcsWUosL23eST7xxM0nrbqMNubr0AuJ/xQ6umE=");
    CHECK_FALSE(r.m.wg.devices.at("mesh").device.peers.count(p3));
    CHECK(r.run(after, apply::Mode::plan).plan.empty());
    check_nothing_orphaned(r);
}

}  // namespace

TEST_CASE("faults: a run killed after any change leaves nothing the next run cannot find, and a revoked member's peer is removed",
          "[faults][kill]") {
    Rig probe;
    Fleet before(kBefore);
    REQUIRE(probe.run(before).ok());
    const size_t first = probe.inj.count;
    probe.inj.count = 0;
    Fleet after(kAfter);
    REQUIRE(probe.run(after).ok());
    const size_t edit = probe.inj.count;
    for (size_t k = 1; k <= first; ++k) {
        DYNAMIC_SECTION("first apply killed after change " << k << " of " << first) { kill_then_apply(true, k); }
    }
    for (size_t k = 1; k <= edit; ++k) {
        DYNAMIC_SECTION("edit killed after change " << k << " of " << edit) { kill_then_apply(false, k); }
    }
}

TEST_CASE("faults: after a failed set, only endpoints really set are recorded, so the roaming rule still applies the new one",
          "[faults][endpoints]") {
    Rig r;
    Fleet before(kBefore), after(kAfter);
    REQUIRE(r.run(before).ok());
    auto p1 = *model::Key::from_base64("L1BSyf0VsZoYxYTQE2NWgZhhPww06EQJ73k4cJoVnsI=");
    CHECK(r.state.owned.endpoints.at("mesh").at(p1) == ep("203.0.113.1:51820"));
    // p1's session is alive at its old endpoint.
    r.m.wg.devices.at("mesh").stats[p1].last_handshake = r.m.now - 10;
    r.m.wg.fail_next = backend::Error{EIO, "set WireGuard device mesh: injected (EIO)"};
    auto failed = r.run(after);
    REQUIRE(failed.applied);
    REQUIRE_FALSE(failed.applied->ok());
    CHECK(r.m.wg.devices.at("mesh").device.peers.at(p1).endpoint == ep("203.0.113.1:51820"));
    // Not set, so not recorded: the record still says what was set last.
    CHECK(r.state.owned.endpoints.at("mesh").at(p1) == ep("203.0.113.1:51820"));
    // The next run sets the new endpoint although the session is alive: the old endpoint is
    // not a roamed one, it is the one wg-fleet set before.
    auto next = r.run(after);
    REQUIRE(next.ok());
    CHECK(r.m.wg.devices.at("mesh").device.peers.at(p1).endpoint == ep("203.0.113.9:51820"));
    CHECK(r.state.owned.endpoints.at("mesh").at(p1) == ep("203.0.113.9:51820"));
}

TEST_CASE("faults: a grouped WireGuard set that fails half way reports exactly the peers it applied", "[faults][report]") {
    Rig r;
    Fleet f(kAfter);
    // A device created in this apply gets every peer in one set.
    r.inj.fail_peer_set = true;
    auto res = r.run(f);
    REQUIRE(res.applied);
    REQUIRE_FALSE(res.applied->ok());
    const auto& dev = r.m.wg.devices.at("mesh").device;
    REQUIRE_FALSE(dev.peers.empty());
    size_t peer_ops = 0, peers_done = 0;
    for (const auto& op : res.plan.ops)
        if (std::holds_alternative<plan::OpAddPeer>(op)) ++peer_ops;
    for (const auto& line : res.applied->done)
        if (line.rfind("+ peer", 0) == 0) ++peers_done;
    CHECK(peers_done == dev.peers.size());
    CHECK(peers_done < peer_ops);
    for (const auto& line : res.applied->not_done) CHECK(line.find("+ device") == std::string::npos);
}
