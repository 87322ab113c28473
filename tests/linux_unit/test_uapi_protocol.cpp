// The UAPI text layer without a daemon: get replies into WgDeviceLive, WgDeviceChange into the
// exact set=1 text, errno replies into Status; and WgUapi's reader against an in-process server
// on a socket in a temporary directory (no root needed).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "linux/wg_select.hpp"
#include "linux/wg_uapi.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace wgf;
using backend::WgDeviceChange;
using backend::WgPeerChange;
using model::Endpoint;
using model::Key;
using model::Prefix;
using model::SecretKey;

namespace {

// Independent of the code under test: printf's hex.
std::string hex(const std::array<uint8_t, 32>& b) {
    std::string out;
    char buf[3];
    for (uint8_t c : b) {
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
    }
    return out;
}

SecretKey secret(uint8_t seed) {
    std::array<uint8_t, 32> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
    b[0] &= 248;
    b[31] = static_cast<uint8_t>((b[31] & 127) | 64);
    return SecretKey(b);
}

Key pub(uint8_t seed) { return secret(seed).public_key(); }

Prefix pfx(const char* s) { return Prefix::parse(s).value(); }

std::string str(const linux_::WipedString& s) { return std::string(s.data(), s.size()); }

// A reply as wireguard-go writes it (peer order is its map order, allowed IPs its trie order).
std::string sample_reply() {
    return "private_key=" + hex(secret(1).raw()) +
           "\n"
           "listen_port=51820\n"
           "fwmark=51\n"
           "public_key=" +
           hex(pub(2).bytes) +
           "\n"
           "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
           "protocol_version=1\n"
           "endpoint=[fd00:0:0::1]:51821\n"
           "last_handshake_time_sec=1700000000\n"
           "last_handshake_time_nsec=12345\n"
           "tx_bytes=100\n"
           "rx_bytes=200\n"
           "persistent_keepalive_interval=25\n"
           "allowed_ip=fd00:1::/64\n"
           "allowed_ip=10.1.0.0/24\n"
           "allowed_ip=10.0.0.7/16\n"
           "public_key=" +
           hex(pub(3).bytes) +
           "\n"
           "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
           "protocol_version=1\n"
           "endpoint=192.0.2.9:51820\n"
           "last_handshake_time_sec=0\n"
           "last_handshake_time_nsec=0\n"
           "tx_bytes=0\n"
           "rx_bytes=0\n"
           "persistent_keepalive_interval=0\n"
           "public_key=" +
           hex(pub(4).bytes) +
           "\n"
           "protocol_version=1\n"
           "last_handshake_time_sec=0\n"
           "persistent_keepalive_interval=0\n"
           "allowed_ip=10.9.0.0/24\n"
           "errno=0\n"
           "\n";
}

// Replies over a real socket: serves get with `reply` cut into small writes (so the reader sees
// partial lines) and answers set with `set_reply`, recording each request.
class FakeDaemon {
public:
    FakeDaemon(const std::string& dir, const std::string& ifname, std::string reply, std::string set_reply = "errno=0\n\n")
        : reply_(std::move(reply)), set_reply_(std::move(set_reply)) {
        path_ = dir + "/" + ifname + ".sock";
        listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
        REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(listen(listen_fd_, 8) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeDaemon() {
        stop_ = true;
        shutdown(listen_fd_, SHUT_RDWR);
        thread_.join();
        close(listen_fd_);
        unlink(path_.c_str());
    }
    std::vector<std::string> requests() {
        std::lock_guard<std::mutex> g(mu_);
        return requests_;
    }
    size_t chunk = 13;

private:
    void serve() {
        while (!stop_) {
            int c = accept(listen_fd_, nullptr, nullptr);
            if (c < 0) return;
            std::string in;
            char buf[65536];
            for (;;) {
                // Whole operations only: get=1\n\n or set=1\n...\n\n.
                size_t end;
                while ((end = in.find("\n\n")) != std::string::npos) {
                    std::string op = in.substr(0, end + 2);
                    in.erase(0, end + 2);
                    {
                        std::lock_guard<std::mutex> g(mu_);
                        requests_.push_back(op);
                    }
                    if (op == "get=1\n\n") {
                        for (size_t i = 0; i < reply_.size(); i += chunk) {
                            (void)!write(c, reply_.data() + i, std::min(chunk, reply_.size() - i));
                            if (reply_.size() < 100000) usleep(100);
                        }
                    } else {
                        (void)!write(c, set_reply_.data(), set_reply_.size());
                    }
                }
                ssize_t n = read(c, buf, sizeof buf);
                if (n <= 0) break;
                in.append(buf, static_cast<size_t>(n));
            }
            close(c);
        }
    }

    std::string path_, reply_, set_reply_;
    int listen_fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mu_;
    std::vector<std::string> requests_;
};

using TempDir = wgf::test::TempDir;

}  // namespace

TEST_CASE("uapi protocol: a get reply becomes the normalized live device", "[uapi]") {
    auto r = linux_::uapi::parse_get_reply(sample_reply(), "wg-test");
    REQUIRE(r.is_ok());
    const auto& d = r->device;
    CHECK(d.name == "wg-test");
    CHECK(d.listen_port == std::optional<uint16_t>(51820));
    REQUIRE(d.public_key);
    CHECK(*d.public_key == secret(1).public_key());
    // Kept for a try that must restore it (never compared or shown).
    REQUIRE(r->private_key);
    CHECK(*r->private_key == secret(1));
    CHECK(r->fwmark == std::optional<uint32_t>(51));
    REQUIRE(d.peers.size() == 3);

    const auto& p2 = d.peers.at(pub(2));
    CHECK(p2.public_key == pub(2));
    CHECK(p2.endpoint == std::optional<Endpoint>(Endpoint{"fd00::1", 51821}));  // canonical, no brackets
    CHECK(p2.keepalive == 25);
    // Masked, sorted, unique: 10.0.0.7/16 is the network 10.0.0.0/16.
    CHECK(p2.allowed_ips.prefixes() == std::vector<Prefix>{pfx("10.0.0.0/16"), pfx("10.1.0.0/24"), pfx("fd00:1::/64")});
    CHECK(r->stats.at(pub(2)).last_handshake == 1700000000);
    CHECK(r->stats.at(pub(2)).rx_bytes == 200);
    CHECK(r->stats.at(pub(2)).tx_bytes == 100);

    const auto& p3 = d.peers.at(pub(3));
    CHECK(p3.endpoint == std::optional<Endpoint>(Endpoint{"192.0.2.9", 51820}));
    CHECK(p3.allowed_ips.empty());
    CHECK(p3.keepalive == 0);
    CHECK(r->stats.at(pub(3)).last_handshake == 0);

    const auto& p4 = d.peers.at(pub(4));
    CHECK_FALSE(p4.endpoint);
    CHECK(p4.allowed_ips.prefixes() == std::vector<Prefix>{pfx("10.9.0.0/24")});
}

TEST_CASE("uapi protocol: peers listed in any order each keep their own fields and counters", "[uapi]") {
    // As wireguard-go lists them: in its hash map's order.
    const uint8_t listed[] = {7, 2, 9, 4, 1, 8, 3};
    std::string reply;
    for (uint8_t n : listed) {
        reply += "public_key=" + hex(pub(n).bytes) + "\n";
        reply += fmt::format("allowed_ip=10.0.{}.0/24\nrx_bytes={}\nlast_handshake_time_sec={}\n", n, 100 + n, 1000 + n);
    }
    reply += "errno=0\n\n";
    auto r = linux_::uapi::parse_get_reply(reply, "wg-test");
    REQUIRE(r.is_ok());
    REQUIRE(r->device.peers.size() == std::size(listed));
    REQUIRE(r->stats.size() == std::size(listed));
    for (uint8_t n : listed) {
        INFO(int{n});
        const auto& p = r->device.peers.at(pub(n));
        CHECK(p.public_key == pub(n));
        CHECK(p.allowed_ips.prefixes() == std::vector<Prefix>{Prefix::parse(fmt::format("10.0.{}.0/24", n)).value()});
        CHECK(r->stats.at(pub(n)).rx_bytes == uint64_t{100} + n);
        CHECK(r->stats.at(pub(n)).last_handshake == 1000 + n);
    }
}

TEST_CASE("uapi protocol: a device without key, port or fwmark", "[uapi]") {
    auto r = linux_::uapi::parse_get_reply("errno=0\n\n", "wg-empty");
    REQUIRE(r.is_ok());
    CHECK_FALSE(r->device.public_key);
    CHECK_FALSE(r->private_key);
    CHECK(r->device.listen_port == std::optional<uint16_t>(0));
    CHECK_FALSE(r->fwmark);
    CHECK(r->device.peers.empty());
    // fwmark=0 means off.
    auto z = linux_::uapi::parse_get_reply("fwmark=0\nerrno=0\n\n", "wg-empty");
    REQUIRE(z.is_ok());
    CHECK_FALSE(z->fwmark);
}

TEST_CASE("uapi protocol: malformed get replies are errors that name the device and never the key", "[uapi]") {
    const std::string pk = hex(secret(1).raw());
    const std::string k2 = hex(pub(2).bytes), k3 = hex(pub(3).bytes), k4 = hex(pub(4).bytes);
    struct Case {
        std::string reply;
        std::string expect;
    };
    std::vector<Case> cases = {
        {"listen_port=51820\n", "reply ended before its blank line"},
        {"listen_port=51820\n\n", "reply ended without errno="},
        {"", "reply ended before its blank line"},
        {"listen_port\nerrno=0\n\n", "line 1: no '=' in 'listen_port'"},
        {"private_key" + pk + "\nerrno=0\n\n", "line 1: no '=' in a private... line"},
        {"listen_port=70000\nerrno=0\n\n", "listen_port '70000' is not 0..65535"},
        {"private_key=" + pk.substr(0, 63) + "g\nerrno=0\n\n", "private_key is not 64 hex digits"},
        {"private_key=" + pk + "00\nerrno=0\n\n", "private_key is not 64 hex digits"},
        {"public_key=xyz\nerrno=0\n\n", "public_key is not 64 hex digits"},
        {"allowed_ip=10.0.0.0/8\nerrno=0\n\n", "allowed_ip before any public_key"},
        {"public_key=" + k2 + "\nallowed_ip=10.0.0.0/33\nerrno=0\n\n", "line 2: allowed_ip '10.0.0.0/33' is not an IP prefix"},
        {"public_key=" + k2 + "\nallowed_ip=10.0.0.0\nerrno=0\n\n", "allowed_ip '10.0.0.0' is not an IP prefix"},
        {"public_key=" + k2 + "\nendpoint=fd00::1:51820\nerrno=0\n\n", "endpoint 'fd00::1:51820' is not IP:PORT or [IPv6]:PORT"},
        {"public_key=" + k2 + "\nendpoint=vpn.example.com:51820\nerrno=0\n\n", "endpoint 'vpn.example.com:51820'"},
        {"public_key=" + k2 + "\nendpoint=192.0.2.1:0\nerrno=0\n\n", "endpoint '192.0.2.1:0'"},
        {"public_key=" + k2 + "\nrx_bytes=-1\nerrno=0\n\n", "rx_bytes '-1' is not a number"},
        {"public_key=" + k2 + "\nprivate_key=" + pk + "\nerrno=0\n\n", "private_key inside the peer"},
        {"public_key=" + k2 + "\npublic_key=" + k2 + "\nerrno=0\n\n", "listed twice"},
        // Out of order, and the line is that of the first second listing.
        {"public_key=" + k3 + "\npublic_key=" + k2 + "\nallowed_ip=10.0.0.0/8\npublic_key=" + k4 + "\npublic_key=" + k2 +
             "\npublic_key=" + k3 + "\nerrno=0\n\n",
         "line 5: peer " + pub(2).base64() + " listed twice"},
        {"errno=x\n\n", "errno 'x' is not a number"},
        {"errno=0\nlisten_port=1\n\n", "data after errno="},
    };
    for (const auto& c : cases) {
        INFO("reply: " << c.reply);
        auto r = linux_::uapi::parse_get_reply(c.reply, "wg-bad");
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.error().code == EPROTO);
        CHECK_THAT(r.error().message,
                   Catch::Contains("read WireGuard device wg-bad") && Catch::Contains(c.expect) && Catch::Contains("(EPROTO)"));
        CHECK_THAT(r.error().message, !Catch::Contains(pk.substr(0, 16)));
    }
}

TEST_CASE("uapi protocol: errno in a get reply, either sign, is the daemon's error", "[uapi]") {
    for (const char* reply : {"errno=-19\n\n", "errno=19\n\n"}) {
        auto r = linux_::uapi::parse_get_reply(reply, "wg-x");
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.error().code == ENODEV);
        CHECK(r.error().message == "read WireGuard device wg-x: No such device (ENODEV)");
    }
}

TEST_CASE("uapi protocol: a one-peer change sends exactly that peer's lines", "[uapi]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    WgPeerChange p;
    p.public_key = pub(2);
    p.endpoint = Endpoint{"fd00::1", 51820};
    p.keepalive = 25;
    p.allowed_ips = {pfx("10.1.0.0/24"), pfx("fd00:1::/64")};
    c.peers.push_back(p);
    auto r = linux_::uapi::format_set_request(c);
    REQUIRE(r.is_ok());
    CHECK(str(*r) ==
          "set=1\n"
          "public_key=" +
              hex(pub(2).bytes) +
              "\n"
              "endpoint=[fd00::1]:51820\n"
              "persistent_keepalive_interval=25\n"
              "allowed_ip=10.1.0.0/24\n"
              "allowed_ip=fd00:1::/64\n"
              "\n");
}

TEST_CASE("uapi protocol: every field of a device change, in the order the daemon needs", "[uapi]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    c.private_key = secret(1);
    c.listen_port = 51820;
    c.fwmark = 0;
    c.replace_peers = true;
    WgPeerChange gone;
    gone.public_key = pub(3);
    gone.remove = true;
    gone.allowed_ips = {pfx("10.3.0.0/24")};  // ignored for a removed peer
    WgPeerChange upd;
    upd.public_key = pub(4);
    upd.update_only = true;
    upd.endpoint = Endpoint{"192.0.2.1", 1};
    upd.keepalive = 0;
    upd.replace_allowed_ips = true;
    upd.allowed_ips = {pfx("10.4.0.9/24")};  // sent masked
    WgPeerChange cleared;
    cleared.public_key = pub(5);
    cleared.replace_allowed_ips = true;
    c.peers = {gone, upd, cleared};
    auto r = linux_::uapi::format_set_request(c);
    REQUIRE(r.is_ok());
    CHECK(str(*r) ==
          "set=1\n"
          "private_key=" +
              hex(secret(1).raw()) +
              "\n"
              "listen_port=51820\n"
              "fwmark=0\n"
              "replace_peers=true\n"
              "public_key=" +
              hex(pub(3).bytes) +
              "\n"
              "remove=true\n"
              "public_key=" +
              hex(pub(4).bytes) +
              "\n"
              "update_only=true\n"
              "endpoint=192.0.2.1:1\n"
              "persistent_keepalive_interval=0\n"
              "replace_allowed_ips=true\n"
              "allowed_ip=10.4.0.0/24\n"
              "public_key=" +
              hex(pub(5).bytes) +
              "\n"
              "replace_allowed_ips=true\n"
              "\n");
}

TEST_CASE("uapi protocol: an empty change is an empty set", "[uapi]") {
    WgDeviceChange c;
    c.ifname = "wg0";
    auto r = linux_::uapi::format_set_request(c);
    REQUIRE(r.is_ok());
    CHECK(str(*r) == "set=1\n\n");
}

TEST_CASE("uapi protocol: an endpoint the protocol cannot carry is refused before sending", "[uapi]") {
    for (const auto& e : {Endpoint{"vpn.example.com", 51820}, Endpoint{"192.0.2.1", 0}}) {
        WgDeviceChange c;
        c.ifname = "wg0";
        WgPeerChange p;
        p.public_key = pub(2);
        p.endpoint = e;
        c.peers.push_back(p);
        auto r = linux_::uapi::format_set_request(c);
        REQUIRE_FALSE(r.is_ok());
        CHECK(r.error().code == EINVAL);
        CHECK_THAT(r.error().message,
                   Catch::Contains("set WireGuard device wg0: endpoint '" + e.str() + "'") && Catch::Contains(pub(2).base64()));
    }
}

TEST_CASE("uapi protocol: set replies", "[uapi]") {
    using linux_::uapi::parse_set_reply;
    CHECK(parse_set_reply("errno=0\n\n", "wg0").is_ok());
    auto neg = parse_set_reply("errno=-98\n\n", "wg0");
    REQUIRE_FALSE(neg.is_ok());
    CHECK(neg.error().code == EADDRINUSE);
    CHECK(neg.error().message == "set WireGuard device wg0: Address already in use (EADDRINUSE)");
    auto pos = parse_set_reply("errno=22\n\n", "wg1");
    REQUIRE_FALSE(pos.is_ok());
    CHECK(pos.error().message == "set WireGuard device wg1: Invalid argument (EINVAL)");
    for (const char* bad : {"", "errno=0\n", "hello\n\n", "errno=zz\n\n", "\n", "errno=0\nerrno=0\n\n"}) {
        INFO("reply: " << bad);
        auto s = parse_set_reply(bad, "wg2");
        REQUIRE_FALSE(s.is_ok());
        CHECK(s.error().code == EPROTO);
        CHECK_THAT(s.error().message, Catch::StartsWith("set WireGuard device wg2: UAPI reply"));
    }
}

TEST_CASE("uapi protocol: wipe_memory zeroes the bytes", "[uapi]") {
    std::array<char, 8> buf;
    buf.fill('k');
    linux_::wipe_memory(buf.data(), buf.size());
    CHECK(buf == std::array<char, 8>{});
}

TEST_CASE("uapi socket: read, set, list and server pid against an in-process daemon", "[uapi]") {
    TempDir dir;
    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    opts.io_timeout_ms = 5000;
    linux_::WgUapi wg(opts);
    FakeDaemon daemon(dir.str(), "wg-fake", sample_reply());

    auto direct = linux_::uapi::parse_get_reply(sample_reply(), "wg-fake");
    REQUIRE(direct.is_ok());
    for (size_t chunk : {size_t{1}, size_t{13}, size_t{4096}}) {
        daemon.chunk = chunk;
        auto r = wg.read_device("wg-fake");
        REQUIRE(r.is_ok());
        CHECK(r->device == direct->device);
        CHECK(r->fwmark == direct->fwmark);
        CHECK(r->stats.size() == 3);
    }

    WgDeviceChange c;
    c.ifname = "wg-fake";
    c.listen_port = 1234;
    REQUIRE(wg.set_device(c).is_ok());
    auto reqs = daemon.requests();
    REQUIRE_FALSE(reqs.empty());
    CHECK(reqs.back() == "set=1\nlisten_port=1234\n\n");

    // A stale socket (nobody listening) and a plain file are not devices.
    {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s/wg-stale.sock", dir.str().c_str());
        REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        close(s);
        FILE* f = std::fopen((dir.str() + "/wg-file.sock").c_str(), "w");
        std::fclose(f);
    }
    CHECK(wg.list_devices() == std::vector<std::string>{"wg-fake"});
    CHECK(wg.has_device("wg-fake"));
    CHECK_FALSE(wg.has_device("wg-stale"));
    CHECK(linux_::userspace_alive("wg-fake", dir.str()));
    CHECK_FALSE(linux_::userspace_alive("wg-stale", dir.str()));
    CHECK_FALSE(linux_::userspace_alive("wg-none", dir.str()));
    // The in-process daemon holds the accepted socket, so its pid is ours.
    CHECK(linux_::userspace_pid("wg-fake", dir.str()) == std::optional<pid_t>(getpid()));
    CHECK_FALSE(linux_::userspace_pid("wg-stale", dir.str()));

    auto stale = wg.read_device("wg-stale");
    REQUIRE_FALSE(stale.is_ok());
    CHECK(stale.error().code == ENODEV);
    CHECK_THAT(stale.error().message, Catch::Contains("read WireGuard device wg-stale") && Catch::Contains("refuses connections"));
    auto missing = wg.set_device(WgDeviceChange{"wg-none", {}, {}, {}, false, {}});
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.error().code == ENODEV);
    CHECK_THAT(missing.error().message,
               Catch::StartsWith("set WireGuard device wg-none (no UAPI socket " + dir.str() + "/wg-none.sock): No such device (ENODEV)"));
}

TEST_CASE("uapi socket: the daemon's errno comes back naming the device", "[uapi]") {
    TempDir dir;
    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    linux_::WgUapi wg(opts);
    FakeDaemon daemon(dir.str(), "wg-err", "errno=0\n\n", "errno=-98\n\n");
    WgDeviceChange c;
    c.ifname = "wg-err";
    c.listen_port = 1;
    auto s = wg.set_device(c);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.error().message == "set WireGuard device wg-err: Address already in use (EADDRINUSE)");
}

TEST_CASE("uapi socket: a daemon that rejects a long request early reports its errno, not a broken pipe", "[uapi]") {
    TempDir dir;
    std::string path = dir.str() + "/wg-early.sock";
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(lfd, 1) == 0);
    // As wireguard-go does on a bad line: answer at once, then drop the rest of the request.
    std::thread daemon([lfd] {
        int c = accept(lfd, nullptr, nullptr);
        char buf[64];
        (void)!read(c, buf, sizeof buf);
        (void)!write(c, "errno=-98\n\n", 11);
        close(c);
    });
    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    opts.io_timeout_ms = 5000;
    linux_::WgUapi wg(opts);
    WgDeviceChange c;
    c.ifname = "wg-early";
    c.listen_port = 51820;
    for (int i = 0; i < 20000; ++i) {  // ~2.6 MB: far more than the socket buffers hold
        WgPeerChange p;
        p.public_key.bytes[0] = static_cast<uint8_t>(i);
        p.public_key.bytes[1] = static_cast<uint8_t>(i >> 8);
        p.allowed_ips = {pfx("10.0.0.0/8")};
        c.peers.push_back(p);
    }
    auto s = wg.set_device(c);
    daemon.join();
    close(lfd);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.error().message == "set WireGuard device wg-early: Address already in use (EADDRINUSE)");
}

TEST_CASE("uapi socket: a reply larger than the read buffer", "[uapi]") {
    // ~1 MB: several buffer refills with lines split across them.
    std::string reply = "listen_port=1\n";
    std::vector<Key> keys;
    for (int i = 0; i < 3000; ++i) {
        Key k{};
        k.bytes[0] = static_cast<uint8_t>(i);
        k.bytes[1] = static_cast<uint8_t>(i >> 8);
        keys.push_back(k);
        reply += "public_key=" + hex(k.bytes) + "\nprotocol_version=1\nendpoint=192.0.2." + std::to_string(i % 250 + 1) +
                 ":51820\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=1\nrx_bytes=2\n"
                 "persistent_keepalive_interval=0\n";
        for (int j = 0; j < 4; ++j)
            reply += "allowed_ip=10." + std::to_string(j) + "." + std::to_string(i / 250) + "." + std::to_string(i % 250) + "/32\n";
    }
    reply += "errno=0\n\n";
    TempDir dir;
    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    linux_::WgUapi wg(opts);
    FakeDaemon daemon(dir.str(), "wg-big", reply);
    daemon.chunk = 65536 + 17;
    auto r = wg.read_device("wg-big");
    REQUIRE(r.is_ok());
    REQUIRE(r->device.peers.size() == 3000);
    CHECK(r->device.peers.at(keys[2999]).allowed_ips.size() == 4);
    CHECK(r->device.peers.at(keys[1234]).endpoint == std::optional<Endpoint>(Endpoint{"192.0.2.235", 51820}));
}

TEST_CASE("uapi userspace command: configured, then environment, then wireguard-go", "[uapi]") {
    struct Env {
        std::string name;
        std::optional<std::string> old;
        explicit Env(std::string n) : name(std::move(n)) {
            if (const char* v = std::getenv(name.c_str())) old = v;
        }
        ~Env() {
            if (old) setenv(name.c_str(), old->c_str(), 1);
            else unsetenv(name.c_str());
        }
    } fleet("WG_FLEET_USERSPACE_IMPLEMENTATION"), quick("WG_QUICK_USERSPACE_IMPLEMENTATION"), path("PATH");

    setenv("WG_FLEET_USERSPACE_IMPLEMENTATION", "fleet-impl --flag", 1);
    setenv("WG_QUICK_USERSPACE_IMPLEMENTATION", "quick-impl", 1);
    auto a = linux_::resolve_userspace_command(std::string("  boringtun-cli   --disable-drop-privileges "));
    REQUIRE(a.is_ok());
    CHECK(*a == std::vector<std::string>{"boringtun-cli", "--disable-drop-privileges"});
    auto empty = linux_::resolve_userspace_command(std::string("  "));
    CHECK_FALSE(empty.is_ok());

    auto b = linux_::resolve_userspace_command(std::nullopt);
    REQUIRE(b.is_ok());
    CHECK(*b == std::vector<std::string>{"fleet-impl", "--flag"});

    setenv("WG_FLEET_USERSPACE_IMPLEMENTATION", "", 1);  // empty counts as unset
    auto c = linux_::resolve_userspace_command(std::nullopt);
    REQUIRE(c.is_ok());
    CHECK(*c == std::vector<std::string>{"quick-impl"});

    unsetenv("WG_FLEET_USERSPACE_IMPLEMENTATION");
    unsetenv("WG_QUICK_USERSPACE_IMPLEMENTATION");
    TempDir bin;
    setenv("PATH", bin.str().c_str(), 1);
    auto none = linux_::resolve_userspace_command(std::nullopt);
    REQUIRE_FALSE(none.is_ok());
    CHECK(none.error().code == ENOENT);
    CHECK_THAT(none.error().message, Catch::Contains("wireguard-go is not in PATH"));

    std::string fake = bin.str() + "/wireguard-go";
    FILE* f = std::fopen(fake.c_str(), "w");
    std::fputs("#!/bin/sh\nexit 0\n", f);
    std::fclose(f);
    chmod(fake.c_str(), 0755);
    auto found = linux_::resolve_userspace_command(std::nullopt);
    REQUIRE(found.is_ok());
    CHECK(*found == std::vector<std::string>{"wireguard-go"});
}

TEST_CASE("uapi userspace start: errors name the command and quote what it printed", "[uapi]") {
    TempDir dir;
    std::string script = dir.str() + "/broken-wg";
    FILE* f = std::fopen(script.c_str(), "w");
    std::fputs("#!/bin/sh\necho \"cannot create tun $1: permission denied\" >&2\nexit 3\n", f);
    std::fclose(f);
    chmod(script.c_str(), 0755);
    auto s = linux_::start_userspace({script}, "wg-broken", dir.str(), 5000);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.error().message ==
          "start userspace WireGuard `" + script + " wg-broken`: exited with status 3: cannot create tun wg-broken: permission denied");

    auto missing = linux_::start_userspace({"no-such-wireguard-impl"}, "wg-x", dir.str(), 1000);
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.error().code == ENOENT);
    CHECK_THAT(missing.error().message, Catch::Contains("no-such-wireguard-impl not found in PATH"));

    // Exits 0 but never serves the socket: a bounded wait, then an error naming the socket.
    std::string quiet = dir.str() + "/quiet-wg";
    f = std::fopen(quiet.c_str(), "w");
    std::fputs("#!/bin/sh\nexit 0\n", f);
    std::fclose(f);
    chmod(quiet.c_str(), 0755);
    auto t = linux_::start_userspace({quiet}, "wg-quiet", dir.str(), 300);
    REQUIRE_FALSE(t.is_ok());
    CHECK(t.error().code == ETIMEDOUT);
    CHECK(t.error().message == "start userspace WireGuard `" + quiet + " wg-quiet`: no answer on " + dir.str() +
                                   "/wg-quiet.sock within 300 ms: Connection timed out (ETIMEDOUT)");
}

namespace {

// A kernel backend whose link creation fails with a chosen errno (0: succeeds).
class StubKernel : public backend::WireGuard {
public:
    int create_errno = 0;
    int creates = 0;
    std::vector<std::string> list_devices() override { return {"wg-k"}; }
    backend::Result<backend::WgDeviceLive> read_device(const std::string& n) override {
        return backend::errno_error(ENODEV, "kernel: read WireGuard device " + n);
    }
    backend::Status set_device(const WgDeviceChange& c) override {
        return backend::errno_error(ENODEV, "kernel: set WireGuard device " + c.ifname);
    }
    backend::Status create_device(const std::string& n) override {
        ++creates;
        if (create_errno) return backend::errno_error(create_errno, "create link " + n + " kind wireguard");
        return backend::Status::ok();
    }
    backend::Status delete_device(const std::string& n) override {
        return backend::errno_error(ENODEV, "kernel: delete WireGuard device " + n);
    }
};

}  // namespace

TEST_CASE("uapi select: the kernel first, a userspace implementation only when the kernel lacks WireGuard", "[uapi]") {
    TempDir dir;
    const std::string marker = dir.str() + "/started";
    const std::string script = dir.str() + "/fake-wg";
    FILE* f = std::fopen(script.c_str(), "w");
    std::fprintf(f, "#!/bin/sh\necho \"$1\" > %s\necho 'no tun here' >&2\nexit 1\n", marker.c_str());
    std::fclose(f);
    chmod(script.c_str(), 0755);

    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    opts.userspace_command = script;
    opts.start_timeout_ms = 2000;
    auto kernel = std::make_unique<StubKernel>();
    auto* k = kernel.get();
    linux_::WgSelect wg(std::move(kernel), opts);

    k->create_errno = EEXIST;  // not "no WireGuard": returned as it is, nothing started
    auto exists = wg.create_device("wg-sel");
    REQUIRE_FALSE(exists.is_ok());
    CHECK(exists.error().message == "create link wg-sel kind wireguard: File exists (EEXIST)");
    CHECK_FALSE(fs::exists(marker));

    k->create_errno = 0;
    CHECK(wg.create_device("wg-sel").is_ok());
    CHECK_FALSE(fs::exists(marker));

    k->create_errno = EOPNOTSUPP;
    auto s = wg.create_device("wg-sel");
    REQUIRE_FALSE(s.is_ok());
    CHECK(fs::exists(marker));
    CHECK_THAT(s.error().message,
               Catch::StartsWith("start userspace WireGuard `" + script + " wg-sel`: exited with status 1: no tun here") &&
                   Catch::EndsWith("(after the kernel could not: create link wg-sel kind wireguard: Operation not "
                                   "supported (EOPNOTSUPP))"));
    CHECK(k->creates == 3);

    // Per device: an answering socket means userspace, anything else the kernel.
    FakeDaemon daemon(dir.str(), "wg-user", "listen_port=7\nerrno=0\n\n");
    CHECK(wg.transport_for("wg-user") == linux_::WgSelect::Transport::userspace);
    CHECK(wg.transport_for("wg-k") == linux_::WgSelect::Transport::kernel);
    auto user = wg.read_device("wg-user");
    REQUIRE(user.is_ok());
    CHECK(user->device.listen_port == std::optional<uint16_t>(7));
    auto kern = wg.read_device("wg-k");
    REQUIRE_FALSE(kern.is_ok());
    CHECK_THAT(kern.error().message, Catch::StartsWith("kernel: "));
    CHECK(wg.list_devices() == std::vector<std::string>{"wg-k", "wg-user"});
    auto twice = wg.create_device("wg-user");
    REQUIRE_FALSE(twice.is_ok());
    CHECK(twice.error().code == EEXIST);

    // A socket whose process died: userspace by its file, not alive; creating the device again
    // clears it before asking the kernel.
    {
        int st = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s/wg-dead.sock", dir.str().c_str());
        REQUIRE(bind(st, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        close(st);
    }
    CHECK(wg.transport_for("wg-dead") == linux_::WgSelect::Transport::userspace);
    CHECK_FALSE(wg.userspace_alive("wg-dead"));
    k->create_errno = 0;
    CHECK(wg.create_device("wg-dead").is_ok());
    CHECK(wg.transport_for("wg-dead") == linux_::WgSelect::Transport::kernel);

    // No kernel backend at all: every device without a socket is missing.
    linux_::WgSelect none(nullptr, opts);
    auto missing = none.read_device("wg-none");
    REQUIRE_FALSE(missing.is_ok());
    CHECK(missing.error().code == ENODEV);
    CHECK_THAT(missing.error().message, Catch::StartsWith("read WireGuard device wg-none"));
}

namespace {

// A kernel that serves one device, "wg-k".
class OneDeviceKernel : public StubKernel {
public:
    std::vector<std::string> reads, sets;
    backend::Result<backend::WgDeviceLive> read_device(const std::string& n) override {
        reads.push_back(n);
        if (n != "wg-k") return StubKernel::read_device(n);
        backend::WgDeviceLive live;
        live.device.listen_port = 4242;
        return live;
    }
    backend::Status set_device(const WgDeviceChange& c) override {
        sets.push_back(c.ifname);
        return c.ifname == "wg-k" ? backend::Status::ok() : StubKernel::set_device(c);
    }
};

// A socket file nobody listens on, as a userspace implementation that died leaves it.
void stale_socket(const std::string& path) {
    int st = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(bind(st, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    close(st);
}

}  // namespace

TEST_CASE("uapi select: a stale UAPI socket (connection refused) is removed and the kernel path is tried, as wg does", "[uapi]") {
    TempDir dir;  // never the shared /var/run/wireguard
    linux_::UapiOptions opts;
    opts.socket_dir = dir.str();
    auto kernel = std::make_unique<OneDeviceKernel>();
    auto* k = kernel.get();
    linux_::WgSelect wg(std::move(kernel), opts);
    const std::string sock = dir.str() + "/wg-k.sock";

    // Read: the kernel's device, and the stale socket is gone.
    stale_socket(sock);
    REQUIRE(linux_::uapi_connect(dir.str(), "wg-k") == -ECONNREFUSED);
    auto r = wg.read_device("wg-k");
    REQUIRE(r.is_ok());
    CHECK(r->device.listen_port == std::optional<uint16_t>(4242));
    CHECK(k->reads == std::vector<std::string>{"wg-k"});
    CHECK_FALSE(fs::exists(fs::symlink_status(sock)));
    CHECK(wg.transport_for("wg-k") == linux_::WgSelect::Transport::kernel);

    // Set: the same.
    stale_socket(sock);
    CHECK(wg.set_device(WgDeviceChange{"wg-k", {}, uint16_t{1}, {}, false, {}}).is_ok());
    CHECK(k->sets == std::vector<std::string>{"wg-k"});
    CHECK_FALSE(fs::exists(fs::symlink_status(sock)));

    // A device the kernel does not have either: the kernel's own answer, not the dead socket's.
    stale_socket(dir.str() + "/wg-gone.sock");
    auto gone = wg.read_device("wg-gone");
    REQUIRE_FALSE(gone.is_ok());
    CHECK(gone.error().code == ENODEV);
    CHECK_THAT(gone.error().message, Catch::StartsWith("kernel: read WireGuard device wg-gone"));
    CHECK_FALSE(fs::exists(fs::symlink_status(dir.str() + "/wg-gone.sock")));

    // A socket that answers is the userspace device's, and stays; a plain file is not a socket
    // and is neither used nor removed.
    {
        FakeDaemon daemon(dir.str(), "wg-live", "listen_port=7\nerrno=0\n\n");
        auto live = wg.read_device("wg-live");
        REQUIRE(live.is_ok());
        CHECK(live->device.listen_port == std::optional<uint16_t>(7));
        CHECK(fs::exists(dir.str() + "/wg-live.sock"));
    }
    std::fclose(std::fopen((dir.str() + "/wg-file.sock").c_str(), "w"));
    CHECK_FALSE(wg.read_device("wg-file").is_ok());
    CHECK(fs::exists(dir.str() + "/wg-file.sock"));
}
