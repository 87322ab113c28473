// Benchmark of the UAPI backend (linux::WgUapi, no YAML, no plan) against `wg` on a wireguard-go
// device in a namespace of its own: 10,000 peers with one allowed IP and an endpoint each, loaded
// through the backend; three reads of the whole device (the first one cold) next to `wg show
// dump`; one peer changed, then read back, next to `wg set`; the same load through `wg setconf`
// onto a second device; the peak RSS of this process. Prints the figures (BENCHMARKS.md, section
// 2); the correctness of the same load is a netns test (test_wg_uapi.cpp).
//
// Usage (root): bench_uapi_peers [PEERS]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>

#include "linux/wg_uapi.hpp"
#include "netns/support.hpp"

using namespace wgf;
using backend::WgDeviceChange;
using backend::WgPeerChange;
using model::Endpoint;
using model::Prefix;
using model::SecretKey;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

void run(int peers) {
    test::Netns ns("wguB");
    const std::string ifname = test::unique_name("wgb");
    test::WireguardGo daemon(ns, ifname);
    linux_::WgUapi wg;

    const WgDeviceChange load = test::many_peers(ifname, peers);

    auto t = Clock::now();
    if (auto s = wg.set_device(load); !s) fail("set_device: " + s.error().message);
    std::printf("load %d peers: backend set_device %.1f ms\n", peers, ms_since(t));

    for (int round = 0; round < 3; ++round) {
        t = Clock::now();
        auto live = wg.read_device(ifname);
        const double read_ms = ms_since(t);
        if (!live) fail("read_device: " + live.error().message);
        if (live->device.peers.size() != static_cast<size_t>(peers)) fail("read_device: wrong number of peers");
        t = Clock::now();
        auto dump = test::sh("wg show " + ifname + " dump > /dev/null");
        const double dump_ms = ms_since(t);
        if (dump.status != 0) fail("wg show dump: " + dump.out);
        std::printf("read %d peers: backend read_device %.1f ms, wg show dump %.1f ms\n", peers, read_ms, dump_ms);
    }

    // One peer changes: only its lines go out, then the whole device is read back.
    WgDeviceChange one;
    one.ifname = ifname;
    WgPeerChange moved;
    moved.public_key = load.peers[static_cast<size_t>(peers) / 2].public_key;
    moved.endpoint = Endpoint{"10.201.0.1", 51820};
    one.peers.push_back(moved);
    auto text = linux_::uapi::format_set_request(one);
    if (!text) fail("format_set_request: " + text.error().message);
    t = Clock::now();
    if (auto s = wg.set_device(one); !s) fail("set_device: " + s.error().message);
    auto after = wg.read_device(ifname);
    const double change_ms = ms_since(t);
    if (!after) fail("read_device: " + after.error().message);
    t = Clock::now();
    auto wgset = test::sh("wg set " + ifname + " peer " + moved.public_key.base64() + " endpoint 10.201.0.2:51820");
    const double wgset_ms = ms_since(t);
    if (wgset.status != 0) fail("wg set: " + wgset.out);
    std::printf("change 1 of %d peers: backend set+read %.1f ms (%zu bytes sent), wg set %.1f ms\n", peers, change_ms, text->size(),
                wgset_ms);

    // The same load through `wg setconf` onto a second, empty device.
    const std::string other = test::unique_name("wgc");
    test::WireguardGo daemon2(ns, other);
    const std::string conf = "/tmp/" + other + ".conf";
    test::write_wg_conf(conf, load);
    t = Clock::now();
    auto setconf = test::sh("wg setconf " + other + " " + conf);
    const double setconf_ms = ms_since(t);
    std::remove(conf.c_str());
    if (setconf.status != 0) fail("wg setconf: " + setconf.out);
    std::printf("load %d peers: wg setconf %.1f ms\n", peers, setconf_ms);

    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM", 0) == 0) std::printf("peak RSS of this process: %s\n", line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    const int peers = argc > 1 ? std::atoi(argv[1]) : 10000;
    if (peers < 1 || peers > 1000000) {
        std::fprintf(stderr, "usage: %s [PEERS]   (1 .. 1000000; default 10000)\n", argv[0]);
        return 2;
    }
    if (auto missing = test::netns_missing(); !missing.empty()) {
        std::fprintf(stderr, "bench_uapi_peers: %s\n", missing.c_str());
        return 1;
    }
    try {
        run(peers);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_uapi_peers: %s\n", e.what());
        return 1;
    }
    return 0;
}
