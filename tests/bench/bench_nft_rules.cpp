// Benchmark of one change on a large nftables table: the nftables backend (linux::Nft) in a
// namespace of its own loads 10,000 forwards (elements of its DNAT map), reads them back, then
// adds one after a read (the cached snapshot), adds one and removes one from a fresh backend (a
// snapshot read inside), next to `nft add element` for the same kind of change. Prints the figures.
//
// Usage (root): bench_nft_rules [RULES]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "linux/nft.hpp"
#include "netns/support.hpp"

using wgf::backend::FirewallChange;
using wgf::linux_::Nft;
using wgf::model::FwKind;
using wgf::model::FwRule;
using wgf::model::IpAddr;
using wgf::model::Proto;
using wgf::test::Netns;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

FwRule dnat(const std::string& id, uint16_t port, const std::string& to) {
    return FwRule{
        .id = id, .kind = FwKind::dnat, .proto = Proto::tcp, .port = port, .iif = {}, .oif = {}, .to = IpAddr::parse(to), .to_port = 80};
}

// The netlink socket belongs to the namespace it was opened in.
std::unique_ptr<Nft> nft_in(const Netns& ns) {
    wgf::test::InNetns in(ns);
    return std::make_unique<Nft>();
}

void apply(Nft& fw, const FirewallChange& change) {
    if (auto s = fw.apply(change); !s) throw std::runtime_error("apply: " + s.error().message);
}

void run(int rules) {
    Netns ns("wgfb");
    auto fw = nft_in(ns);

    std::vector<FwRule> many;
    for (int i = 0; i < rules; ++i)
        many.push_back(dnat(fmt::format("dnat-{}", i), static_cast<uint16_t>(10000 + i), fmt::format("192.0.2.{}", 1 + i % 250)));
    auto t = Clock::now();
    apply(*fw, FirewallChange{{}, many});
    const double load_ms = ms_since(t);

    t = Clock::now();
    auto live = fw->read();
    const double read_ms = ms_since(t);
    if (!live) throw std::runtime_error("read: " + live.error().message);
    if (live->rules.size() != many.size()) throw std::runtime_error("read: wrong number of rules");

    t = Clock::now();
    apply(*fw, FirewallChange{{}, {dnat("dnat-new", 30000, "192.0.2.7")}});
    const double add_cached_ms = ms_since(t);

    auto fresh = nft_in(ns);
    t = Clock::now();
    apply(*fresh, FirewallChange{{}, {dnat("dnat-new2", 30001, "192.0.2.7")}});
    const double add_fresh_ms = ms_since(t);
    t = Clock::now();
    apply(*fresh, FirewallChange{{"dnat-new2"}, {}});
    const double remove_ms = ms_since(t);

    t = Clock::now();
    auto cli = ns.sh("nft add element inet wg-fleet fwd4 \"{ tcp . 30002 : 192.0.2.7 . 80 }\"");
    const double cli_ms = ms_since(t);
    if (cli.status != 0) throw std::runtime_error("nft add element: " + cli.out);

    std::printf(
        "%d DNAT rules: initial apply %.1f ms, read() %.1f ms, add one after read() %.2f ms, add one without a prior "
        "read %.1f ms, remove one (snapshot read inside) %.1f ms, `nft add element` %.1f ms\n",
        rules, load_ms, read_ms, add_cached_ms, add_fresh_ms, remove_ms, cli_ms);
}

}  // namespace

int main(int argc, char** argv) {
    const int rules = argc > 1 ? std::atoi(argv[1]) : 10000;
    if (rules < 1 || rules > 50000) {
        std::fprintf(stderr, "usage: %s [RULES]   (1 .. 50000; default 10000)\n", argv[0]);
        return 2;
    }
    if (auto missing = wgf::test::netns_missing(); !missing.empty()) {
        std::fprintf(stderr, "bench_nft_rules: %s\n", missing.c_str());
        return 1;
    }
    try {
        run(rules);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_nft_rules: %s\n", e.what());
        return 1;
    }
    return 0;
}
