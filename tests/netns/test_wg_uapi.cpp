// The UAPI backend against real wireguard-go processes in network namespaces the tests create:
// apply/read back/apply again/remove, starting wireguard-go through the userspace fallback (and
// again after it died), a real handshake between two namespaces that survives changes to other
// peers, and the error paths. The socket directory /var/run/wireguard is shared by every
// namespace, so every interface name is unique.
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

#include "linux/wg_select.hpp"
#include "linux/wg_uapi.hpp"
#include "support.hpp"

using namespace wgf;
using backend::WgDeviceChange;
using backend::WgDeviceLive;
using backend::WgPeerChange;
using model::Endpoint;
using model::Key;
using model::Prefix;
using model::SecretKey;
using test::Netns;

namespace {

Prefix pfx(const char* s) { return Prefix::parse(s).value(); }

std::string hex(const Key& k) {
    std::string out;
    char buf[3];
    for (uint8_t c : k.bytes) {
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
    }
    return out;
}

// Stands in for the kernel genl backend on a kernel without WireGuard: creating a link fails
// the way RTM_NEWLINK kind wireguard fails here ("Unknown device type").
class NoKernelWireGuard : public backend::WireGuard {
public:
    int creates = 0;
    std::vector<std::string> list_devices() override { return {}; }
    backend::Result<WgDeviceLive> read_device(const std::string& n) override {
        return backend::errno_error(ENODEV, "read WireGuard device " + n);
    }
    backend::Status set_device(const WgDeviceChange& c) override {
        return backend::errno_error(ENODEV, "set WireGuard device " + c.ifname);
    }
    backend::Status create_device(const std::string& n) override {
        ++creates;
        return backend::errno_error(EOPNOTSUPP, "create link " + n + " kind wireguard");
    }
    backend::Status delete_device(const std::string& n) override { return backend::errno_error(ENODEV, "delete WireGuard device " + n); }
};

bool running(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = s.rfind(')');
    return close != std::string::npos && close + 2 < s.size() && s[close + 2] != 'Z' && s[close + 2] != 'X';
}

// Orphaned daemons are re-parented to this test process, so it can reap them by pid (a
// container's init may not reap them at all).
void become_subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

// Reaps pid if it is our child (re-parented to us), or sees it gone otherwise. A process whose
// main thread is a zombie may not be reapable yet while its other threads exit.
bool reaped(pid_t pid) {
    int r = waitpid(pid, nullptr, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD && !running(pid));
}

// Stops a daemon this test did not fork directly (it daemonized), by pid, and removes its socket.
struct KillByPid {
    pid_t pid;
    std::string ifname;
    ~KillByPid() {
        if (pid > 0) {
            if (running(pid)) kill(pid, SIGTERM);
            if (!test::wait_for([&] { return reaped(pid); }, 3000)) {
                kill(pid, SIGKILL);
                test::wait_for([&] { return reaped(pid); }, 3000);
            }
        }
        unlink((std::string(linux_::kUapiSocketDir) + "/" + ifname + ".sock").c_str());
    }
};

std::string inode_of(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return "?" + path;
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

struct PeerSpec {
    SecretKey key = SecretKey::generate();
    std::optional<Endpoint> endpoint;
    std::vector<Prefix> allowed;
    uint16_t keepalive = 0;
    Key pub() const { return key.public_key(); }
};

WgPeerChange add_peer(const PeerSpec& p) {
    WgPeerChange c;
    c.public_key = p.pub();
    c.endpoint = p.endpoint;
    c.keepalive = p.keepalive;
    c.replace_allowed_ips = true;
    c.allowed_ips = p.allowed;
    return c;
}

model::WgPeer live_peer(const PeerSpec& p) {
    model::WgPeer w;
    w.public_key = p.pub();
    w.endpoint = p.endpoint;
    w.allowed_ips = model::PrefixSet(p.allowed);
    w.keepalive = p.keepalive;
    return w;
}

}  // namespace

TEST_CASE("uapi: apply a device, read it back equal, apply again, remove a peer, replace allowed IPs", "[uapi]") {
    if (!test::netns_available()) return;
    Netns ns("wguA");
    const std::string ifname = test::unique_name("wgu");
    test::WireguardGo daemon(ns, ifname);  // its link stays down: nothing is sent to the endpoints
    linux_::WgUapi wg;

    SecretKey key = SecretKey::generate();
    PeerSpec p1{SecretKey::generate(), Endpoint{"192.0.2.1", 51820}, {pfx("fd10:1::/64"), pfx("10.10.1.0/24")}, 25};
    PeerSpec p2{SecretKey::generate(), Endpoint{"2001:db8::2", 51821}, {pfx("10.10.2.0/24")}, 0};
    PeerSpec p3{SecretKey::generate(), Endpoint{"198.51.100.3", 51822}, {pfx("10.10.3.7/32"), pfx("10.10.30.0/24")}, 0};

    WgDeviceChange create;
    create.ifname = ifname;
    create.private_key = key;
    create.listen_port = 51820;
    create.fwmark = 0x57;
    create.replace_peers = true;
    create.peers = {add_peer(p1), add_peer(p2), add_peer(p3)};
    REQUIRE(wg.set_device(create).is_ok());

    model::WgInterface expected;
    expected.name = ifname;
    expected.listen_port = 51820;
    expected.public_key = key.public_key();
    for (const auto* p : {&p1, &p2, &p3}) expected.peers.emplace(p->pub(), live_peer(*p));

    auto first = wg.read_device(ifname);
    REQUIRE(first.is_ok());
    CHECK(first->device == expected);
    CHECK(first->fwmark == std::optional<uint32_t>(0x57));
    CHECK(first->stats.size() == 3);
    CHECK(first->stats.at(p1.pub()).last_handshake == 0);
    auto listed = wg.list_devices();  // the directory is shared: other tests' devices may be there too
    CHECK(std::find(listed.begin(), listed.end(), ifname) != listed.end());

    // The same again: nothing observable changes.
    WgDeviceChange again = create;
    again.replace_peers = false;
    REQUIRE(wg.set_device(again).is_ok());
    auto second = wg.read_device(ifname);
    REQUIRE(second.is_ok());
    CHECK(second->device == first->device);
    CHECK(second->fwmark == first->fwmark);

    // update_only does not create a missing peer.
    PeerSpec ghost{SecretKey::generate(), std::nullopt, {pfx("10.10.9.0/24")}, 0};
    WgDeviceChange upd;
    upd.ifname = ifname;
    upd.peers = {add_peer(ghost)};
    upd.peers[0].update_only = true;
    REQUIRE(wg.set_device(upd).is_ok());
    CHECK(wg.read_device(ifname)->device.peers.count(ghost.pub()) == 0);

    WgDeviceChange remove;
    remove.ifname = ifname;
    remove.peers.push_back(WgPeerChange{p2.pub(), true, false, {}, {}, false, {}});
    REQUIRE(wg.set_device(remove).is_ok());
    auto third = wg.read_device(ifname);
    REQUIRE(third.is_ok());
    expected.peers.erase(p2.pub());
    CHECK(third->device == expected);

    WgDeviceChange replace;
    replace.ifname = ifname;
    WgPeerChange r;
    r.public_key = p3.pub();
    r.replace_allowed_ips = true;
    r.allowed_ips = {pfx("10.10.33.0/24")};
    replace.peers.push_back(r);
    REQUIRE(wg.set_device(replace).is_ok());
    auto fourth = wg.read_device(ifname);
    REQUIRE(fourth.is_ok());
    expected.peers.at(p3.pub()).allowed_ips = {pfx("10.10.33.0/24")};
    CHECK(fourth->device == expected);

    // fwmark 0 turns it off; the key and port stay as they were.
    WgDeviceChange mark;
    mark.ifname = ifname;
    mark.fwmark = 0;
    REQUIRE(wg.set_device(mark).is_ok());
    auto fifth = wg.read_device(ifname);
    REQUIRE(fifth.is_ok());
    CHECK_FALSE(fifth->fwmark);
    CHECK(fifth->device == expected);
}

TEST_CASE("uapi: create_device starts wireguard-go that outlives the call, starts it again after it died, delete stops it", "[uapi]") {
    if (!test::netns_available()) return;
    become_subreaper();
    Netns ns("wguS");
    const std::string ifname = test::unique_name("wgs");
    auto kernel = std::make_unique<NoKernelWireGuard>();
    auto* kernel_view = kernel.get();
    linux_::WgSelect wg(std::move(kernel));

    CHECK(wg.transport_for(ifname) == linux_::WgSelect::Transport::kernel);
    CHECK_FALSE(wg.userspace_alive(ifname));
    {
        test::InNetns in(ns);  // the daemon and its tun belong to the namespace we are in
        auto s = wg.create_device(ifname);
        INFO((s ? std::string("ok") : s.error().message));
        REQUIRE(s.is_ok());
    }
    CHECK(kernel_view->creates == 1);
    auto pid = wg.userspace_pid(ifname);
    REQUIRE(pid);
    KillByPid guard{*pid, ifname};

    // The call returned and wireguard-go's first process has exited; the daemon still serves.
    CHECK(*pid != getpid());
    CHECK(running(*pid));
    CHECK(wg.userspace_alive(ifname));
    CHECK(wg.transport_for(ifname) == linux_::WgSelect::Transport::userspace);
    CHECK(inode_of("/proc/" + std::to_string(*pid) + "/ns/net") == inode_of("/run/netns/" + ns.name()));
    CHECK(ns.sh("ip link show " + ifname).status == 0);
    auto listed = wg.list_devices();
    CHECK(std::find(listed.begin(), listed.end(), ifname) != listed.end());

    SecretKey key = SecretKey::generate();
    WgDeviceChange c;
    c.ifname = ifname;
    c.private_key = key;
    c.listen_port = 51820;
    REQUIRE(wg.set_device(c).is_ok());
    auto live = wg.read_device(ifname);
    REQUIRE(live.is_ok());
    CHECK(live->device.public_key == std::optional<Key>(key.public_key()));

    // The daemon dies (as after an OOM kill): watch sees it and starts it again.
    kill(*pid, SIGKILL);
    REQUIRE(test::wait_for([&] { return !running(*pid); }));
    REQUIRE(test::wait_for([&] { return !wg.userspace_alive(ifname); }));
    // Its socket file stays until the next read, which removes it (it refuses connections) and
    // asks the kernel, as `wg` does: the device is missing, so the reconciler creates it again.
    CHECK(wg.transport_for(ifname) == linux_::WgSelect::Transport::userspace);
    auto dead = wg.read_device(ifname);
    REQUIRE_FALSE(dead.is_ok());
    CHECK(dead.error().code == ENODEV);
    CHECK(wg.transport_for(ifname) == linux_::WgSelect::Transport::kernel);
    {
        test::InNetns in(ns);
        auto s = wg.create_device(ifname);
        INFO((s ? std::string("ok") : s.error().message));
        REQUIRE(s.is_ok());
    }
    auto pid2 = wg.userspace_pid(ifname);
    REQUIRE(pid2);
    KillByPid guard2{*pid2, ifname};
    CHECK(*pid2 != *pid);
    CHECK(wg.userspace_alive(ifname));
    // A fresh daemon: the old key is gone (the reconciler will set it again).
    CHECK_FALSE(wg.read_device(ifname)->device.public_key);

    // A second create is refused rather than starting a second daemon.
    auto twice = wg.create_device(ifname);
    REQUIRE_FALSE(twice.is_ok());
    CHECK(twice.error().code == EEXIST);

    {
        test::InNetns in(ns);
        auto s = wg.delete_device(ifname);
        INFO((s ? std::string("ok") : s.error().message));
        REQUIRE(s.is_ok());
    }
    CHECK_FALSE(wg.userspace_alive(ifname));
    CHECK(test::wait_for([&] { return !running(*pid2); }));
    CHECK(ns.sh("ip link show " + ifname + " 2>/dev/null").status != 0);
    struct stat st {};
    CHECK(stat((std::string(linux_::kUapiSocketDir) + "/" + ifname + ".sock").c_str(), &st) != 0);
}

TEST_CASE("uapi: a handshake between two namespaces survives adding a peer and changing another", "[uapi]") {
    if (!test::netns_available()) return;
    Netns a("wguH"), b("wguH");
    const std::string veth_a = test::unique_name("vua"), veth_b = test::unique_name("vub");
    test::veth_pair(a, veth_a, "10.231.0.1/24", b, veth_b, "10.231.0.2/24");
    const std::string if_a = test::unique_name("wga"), if_b = test::unique_name("wgb");
    test::WireguardGo go_a(a, if_a), go_b(b, if_b);
    linux_::WgUapi wg;

    SecretKey key_a = SecretKey::generate(), key_b = SecretKey::generate();
    PeerSpec peer_b{key_b, Endpoint{"10.231.0.2", 51820}, {pfx("10.99.0.2/32")}, 0};
    PeerSpec peer_d{SecretKey::generate(), std::nullopt, {pfx("10.99.0.4/32")}, 0};
    PeerSpec peer_a{key_a, Endpoint{"10.231.0.1", 51820}, {pfx("10.99.0.1/32")}, 0};

    WgDeviceChange ca;
    ca.ifname = if_a;
    ca.private_key = key_a;
    ca.listen_port = 51820;
    ca.replace_peers = true;
    ca.peers = {add_peer(peer_b), add_peer(peer_d)};
    REQUIRE(wg.set_device(ca).is_ok());
    WgDeviceChange cb;
    cb.ifname = if_b;
    cb.private_key = key_b;
    cb.listen_port = 51820;
    cb.replace_peers = true;
    cb.peers = {add_peer(peer_a)};
    REQUIRE(wg.set_device(cb).is_ok());
    REQUIRE(a.sh("ip addr add 10.99.0.1/24 dev " + if_a + " && ip link set " + if_a + " up").status == 0);
    REQUIRE(b.sh("ip addr add 10.99.0.2/24 dev " + if_b + " && ip link set " + if_b + " up").status == 0);

    auto ping = [&] { return a.sh("ping -c 1 -W 1 10.99.0.2 >/dev/null").status == 0; };
    REQUIRE(test::wait_for(ping, 15000));
    auto before = wg.read_device(if_a);
    REQUIRE(before.is_ok());
    const auto hs = before->stats.at(key_b.public_key());
    REQUIRE(hs.last_handshake > 0);
    REQUIRE(hs.rx_bytes > 0);

    // Add a third peer and change the second peer's allowed IPs: a change that names neither B
    // nor anything of B's.
    PeerSpec peer_c{SecretKey::generate(), std::nullopt, {pfx("10.99.0.3/32")}, 0};
    WgDeviceChange change;
    change.ifname = if_a;
    change.peers.push_back(add_peer(peer_c));
    WgPeerChange d;
    d.public_key = peer_d.pub();
    d.replace_allowed_ips = true;
    d.allowed_ips = {pfx("10.99.0.4/32"), pfx("10.98.0.0/24")};
    change.peers.push_back(d);
    auto text = linux_::uapi::format_set_request(change);
    REQUIRE(text.is_ok());
    CHECK(std::string(text->data(), text->size()).find(hex(key_b.public_key())) == std::string::npos);
    REQUIRE(wg.set_device(change).is_ok());

    // Read before any new traffic: a reset session would show no handshake and zero counters.
    auto after = wg.read_device(if_a);
    REQUIRE(after.is_ok());
    const auto hs_after = after->stats.at(key_b.public_key());
    CHECK(hs_after.last_handshake == hs.last_handshake);
    CHECK(hs_after.rx_bytes >= hs.rx_bytes);
    CHECK(hs_after.tx_bytes >= hs.tx_bytes);
    CHECK(after->device.peers.at(key_b.public_key()) == live_peer(peer_b));
    CHECK(after->device.peers.count(peer_c.pub()) == 1);
    CHECK(after->device.peers.at(peer_d.pub()).allowed_ips.prefixes() == std::vector<Prefix>{pfx("10.98.0.0/24"), pfx("10.99.0.4/32")});

    CHECK(ping());
    auto later = wg.read_device(if_a);
    REQUIRE(later.is_ok());
    CHECK(later->stats.at(key_b.public_key()).last_handshake == hs.last_handshake);
    CHECK(later->stats.at(key_b.public_key()).rx_bytes > hs_after.rx_bytes);
}

namespace {

// The last handshake of a peer to the nanosecond, straight from the UAPI socket (the backend's
// stats keep seconds, and a second handshake can fall in the same second).
std::string handshake_ns(const std::string& ifname, const Key& peer) {
    int fd = linux_::uapi_connect(linux_::kUapiSocketDir, ifname);
    if (fd < 0) return "?";
    const std::string req = "get=1\n\n";
    if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
        close(fd);
        return "?";
    }
    std::string reply;
    char buf[4096];
    ssize_t n;
    while (reply.find("\n\n") == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
    close(fd);
    const std::string start = "public_key=" + hex(peer) + "\n";
    auto at = reply.find(start);
    if (at == std::string::npos) return "?";
    auto sec = reply.find("last_handshake_time_sec=", at), nsec = reply.find("last_handshake_time_nsec=", at);
    auto line = [&](size_t pos) { return reply.substr(pos, reply.find('\n', pos) - pos); };
    return sec == std::string::npos || nsec == std::string::npos ? "?" : line(sec) + " " + line(nsec);
}

}  // namespace

// What `plan` says of a listen-port change, checked on wireguard-go: the dialled side moves to
// a new port; its sessions survive (same keypair, no new handshake on either side), but the
// dialling side reaches it only once its endpoint for it follows the new port: set by its
// configuration, or learnt when the moved side sends to it first.
TEST_CASE("uapi: a listen-port change keeps the session, the dialling peer reaches it once its endpoint follows", "[uapi]") {
    if (!test::netns_available()) return;
    Netns a("wguP"), b("wguP");
    const std::string veth_a = test::unique_name("vpa"), veth_b = test::unique_name("vpb");
    test::veth_pair(a, veth_a, "10.232.0.1/24", b, veth_b, "10.232.0.2/24");
    const std::string if_a = test::unique_name("wpa"), if_b = test::unique_name("wpb");
    test::WireguardGo go_a(a, if_a), go_b(b, if_b);
    linux_::WgUapi wg;

    // A is dialled: it has no endpoint for B. B dials A at 51820.
    SecretKey key_a = SecretKey::generate(), key_b = SecretKey::generate();
    WgDeviceChange ca{if_a, key_a, uint16_t{51820}, {}, true, {add_peer(PeerSpec{key_b, std::nullopt, {pfx("10.98.0.2/32")}, 0})}};
    WgDeviceChange cb{if_b, key_b, uint16_t{51820},
                      {},   true,  {add_peer(PeerSpec{key_a, Endpoint{"10.232.0.1", 51820}, {pfx("10.98.0.1/32")}, 0})}};
    REQUIRE(wg.set_device(ca).is_ok());
    REQUIRE(wg.set_device(cb).is_ok());
    REQUIRE(a.sh("ip addr add 10.98.0.1/24 dev " + if_a + " && ip link set " + if_a + " up").status == 0);
    REQUIRE(b.sh("ip addr add 10.98.0.2/24 dev " + if_b + " && ip link set " + if_b + " up").status == 0);
    auto ping_a = [&] { return b.sh("ping -c 1 -W 1 10.98.0.1 >/dev/null").status == 0; };
    REQUIRE(test::wait_for(ping_a, 15000));
    const std::string hs_a = handshake_ns(if_a, key_b.public_key()), hs_b = handshake_ns(if_b, key_a.public_key());
    REQUIRE(hs_a != "?");
    REQUIRE(hs_b != "?");
    auto rx_a = [&] { return wg.read_device(if_a)->stats.at(key_b.public_key()).rx_bytes; };

    // A moves to 51830. B still dials 51820, where nothing listens: A hears nothing from B.
    REQUIRE(wg.set_device(WgDeviceChange{if_a, {}, uint16_t{51830}, {}, false, {}}).is_ok());
    REQUIRE(wg.read_device(if_a)->device.listen_port == std::optional<uint16_t>(51830));
    const uint64_t rx_before = rx_a();
    CHECK_FALSE(b.sh("ping -c 2 -W 1 10.98.0.1 >/dev/null").status == 0);
    CHECK(rx_a() == rx_before);

    // B's endpoint follows (as wg-fleet on B does once the YAML names the new port): the same
    // session carries traffic again, with no new handshake on either side.
    WgPeerChange follow;
    follow.public_key = key_a.public_key();
    follow.update_only = true;
    follow.endpoint = Endpoint{"10.232.0.1", 51830};
    REQUIRE(wg.set_device(WgDeviceChange{if_b, {}, {}, {}, false, {follow}}).is_ok());
    CHECK(ping_a());
    CHECK(rx_a() > rx_before);
    CHECK(handshake_ns(if_a, key_b.public_key()) == hs_a);
    CHECK(handshake_ns(if_b, key_a.public_key()) == hs_b);

    // The other way to follow: A moves again and sends to B first; B learns A's new port from
    // that authenticated packet (roaming), and the same session goes on.
    REQUIRE(wg.set_device(WgDeviceChange{if_a, {}, uint16_t{51840}, {}, false, {}}).is_ok());
    CHECK(test::wait_for([&] { return a.sh("ping -c 1 -W 1 10.98.0.2 >/dev/null").status == 0; }));
    CHECK(wg.read_device(if_b)->device.peers.at(key_a.public_key()).endpoint == std::optional<Endpoint>(Endpoint{"10.232.0.1", 51840}));
    CHECK(ping_a());
    CHECK(handshake_ns(if_a, key_b.public_key()) == hs_a);
    CHECK(handshake_ns(if_b, key_a.public_key()) == hs_b);
}

TEST_CASE("uapi: errors name the device: missing device, and the daemon's own errno", "[uapi]") {
    if (!test::netns_available()) return;
    const std::string missing = test::unique_name("wgm");
    linux_::WgUapi wg;
    WgDeviceChange c;
    c.ifname = missing;
    c.listen_port = 1;
    auto s = wg.set_device(c);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.error().code == ENODEV);
    CHECK_THAT(s.error().message, Catch::StartsWith("set WireGuard device " + missing) && Catch::Contains("(ENODEV)"));
    auto r = wg.read_device(missing);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code == ENODEV);
    CHECK_THAT(r.error().message, Catch::Contains(missing));

    linux_::WgSelect sel(nullptr);
    auto s2 = sel.set_device(c);
    REQUIRE_FALSE(s2.is_ok());
    CHECK(s2.error().code == ENODEV);
    CHECK_THAT(s2.error().message, Catch::StartsWith("set WireGuard device " + missing));

    // Two devices in one namespace cannot share a port: wireguard-go answers errno=-98.
    Netns ns("wguE");
    const std::string one = test::unique_name("wge"), two = test::unique_name("wgf");
    test::WireguardGo d1(ns, one), d2(ns, two);
    WgDeviceChange p1{one, {}, uint16_t{51999}, {}, false, {}};
    WgDeviceChange p2{two, {}, uint16_t{51999}, {}, false, {}};
    REQUIRE(wg.set_device(p1).is_ok());
    auto clash = wg.set_device(p2);
    REQUIRE_FALSE(clash.is_ok());
    CHECK(clash.error().code == EADDRINUSE);
    CHECK(clash.error().message == "set WireGuard device " + two + ": Address already in use (EADDRINUSE)");
}

// 10,000 peers: loaded through the backend and through `wg setconf`, each read back whole by the
// backend; a change of one peer sends that peer's lines only. The timings of the same steps next to
// `wg` are a benchmark program: tests/bench/bench_uapi_peers.cpp.
TEST_CASE("uapi: 10,000 peers load and read back, through the backend and through wg setconf", "[uapi]") {
    if (!test::netns_available()) return;
    Netns ns("wguB");
    const std::string ifname = test::unique_name("wgb");
    test::WireguardGo daemon(ns, ifname);
    linux_::WgUapi wg;
    const WgDeviceChange load = test::many_peers(ifname, 10000);
    model::WgInterface expected;
    expected.name = ifname;
    expected.listen_port = 51820;
    expected.public_key = load.private_key->public_key();
    for (const auto& p : load.peers) {
        expected.peers.emplace(
            p.public_key,
            model::WgPeer{.public_key = p.public_key, .endpoint = p.endpoint, .allowed_ips = model::PrefixSet(p.allowed_ips)});
    }

    REQUIRE(wg.set_device(load).is_ok());
    auto live = wg.read_device(ifname);
    REQUIRE(live.is_ok());
    CHECK(live->device == expected);

    // One peer changes: exactly its lines go out (public_key + endpoint).
    WgDeviceChange one;
    one.ifname = ifname;
    WgPeerChange moved;
    moved.public_key = load.peers[4321].public_key;
    moved.endpoint = Endpoint{"10.201.0.1", 51820};
    one.peers.push_back(moved);
    auto text = linux_::uapi::format_set_request(one);
    REQUIRE(text.is_ok());
    CHECK(std::count(text->begin(), text->end(), '\n') == 4);  // set=1, public_key, endpoint, blank
    REQUIRE(wg.set_device(one).is_ok());
    auto after = wg.read_device(ifname);
    REQUIRE(after.is_ok());
    CHECK(after->device.peers.at(moved.public_key).endpoint == moved.endpoint);
    CHECK(after->device.peers.size() == 10000);

    // The same load through `wg setconf` onto a second, empty device; the backend reads it whole.
    const std::string other = test::unique_name("wgc");
    test::WireguardGo daemon2(ns, other);
    const std::string conf = "/tmp/" + other + ".conf";
    test::write_wg_conf(conf, load);
    auto setconf = test::sh("wg setconf " + other + " " + conf);
    std::remove(conf.c_str());
    REQUIRE(setconf.status == 0);
    auto theirs = wg.read_device(other);
    REQUIRE(theirs.is_ok());
    expected.name = other;
    expected.listen_port = 51821;
    CHECK(theirs->device == expected);
}
